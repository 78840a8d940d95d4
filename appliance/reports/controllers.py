"""The therapist's report review over HTTP: read, edit, approve and regenerate a session's
report; decide risk flags; the writing profile. The console pages (pages.py) call the same
functions as these handlers.

Reports are clinical notes: only a therapist of the session's patient reaches them. Anyone
else, administrators and auditors included, gets the 404 a missing session gets, and the
attempt is audited as denied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from litestar import Controller, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlmodel import Session, col, select

from appliance.audit.service import AuditEntry, record
from appliance.auth.guards import Principal, provide_principal
from appliance.clinic import access
from appliance.clinic.models import Patient, Role
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Conflict, NotFound
from appliance.jobs import service as jobs
from appliance.jobs.models import Job, JobState
from appliance.recordings import service as sessions
from appliance.recordings.models import Recording, TherapySession
from appliance.reports import flags, profiles, service
from appliance.reports.edits import edited
from appliance.reports.models import FlagStatus
from appliance.reports.schemas import (
    ApproveRequest,
    FlagDecision,
    ProfilePublic,
    ProfileUpdate,
    RegenerateAccepted,
    ReportEdit,
    ReportPublic,
    RiskFlagInboxItem,
    RiskFlagPublic,
    flag_public,
    report_public,
    risk_label,
)
from appliance.reports.service import Approval, Version

STAGE = "report"
JOB_STATES = {
    JobState.queued.value: "the draft is queued and will be written shortly",
    JobState.running.value: "the draft is being written now",
    JobState.failed.value: "drafting failed and will be tried again (is `appliance llm` running?)",
    JobState.dead.value: "drafting failed for good; an administrator can retry it on the jobs page",
    JobState.cancelled.value: "drafting was cancelled (consent was withdrawn)",
    JobState.succeeded.value: "a draft was written",
}


# --- what the API and the console both do ----------------------------------------------------


def report_session(
    db: Session, principal: Principal, session_id: uuid.UUID, action: str
) -> TherapySession:
    """The session if the principal is a therapist of its patient; else 404, audited."""
    try:
        row: TherapySession | None = sessions.get_session(
            db, access.visible_patient_ids(principal), session_id
        )
    except NotFound:
        row = None
    if row is None or principal.role != Role.therapist:
        patient = row.patient_id if row is not None else None
        record(
            db, principal.actor(), AuditEntry(action, "denied", "session", str(session_id), patient)
        )
        db.commit()
        raise NotFound("no such session")
    return row


@dataclass(frozen=True)
class Loaded:
    """A session's report as the therapist reviews it."""

    versions: list[Version]
    chosen: Version | None  # the newest draft, else the approval
    approved: Version | None
    flags: list[flags.Flag]

    def public(self) -> ReportPublic:
        assert self.chosen is not None
        return report_public(self.chosen, self.versions, self.flags, self.approved)


def load(db: Session, store: KeyStore, principal: Principal, row: TherapySession) -> Loaded:
    """Every version and flag of the session's report (audited as one read)."""
    found = service.versions(db, store, principal.actor(), row)
    return Loaded(
        found, service.current(found), service.approved(found), flags.for_session(db, store, row.id)
    )


def report_job(db: Session, row: TherapySession) -> Job | None:
    """The report job of the session's newest recording (it drafts from every recording)."""
    return db.exec(
        select(Job)
        .join(Recording, col(Recording.id) == col(Job.recording_id))
        .where(Recording.session_id == row.id, Job.stage == STAGE)
        .order_by(col(Recording.created_at).desc(), col(Job.created_at).desc())
        .limit(1)
    ).first()


def drafting(db: Session, row: TherapySession) -> str:
    """Why there is no report yet, in a sentence (no PHI)."""
    if not consent.is_granted(db, row.patient_id, Purpose.ai_analysis):
        return (
            "No report is drafted for this session: the patient has not consented to "
            "AI analysis (ai_analysis)."
        )
    job = report_job(db, row)
    if job is None:
        return "No report yet: the session has no recording to draft one from."
    return f"No report yet: {JOB_STATES.get(job.state, job.state)} (report job {job.state})."


def read_report(
    db: Session, store: KeyStore, principal: Principal, session_id: uuid.UUID
) -> Loaded:
    row = report_session(db, principal, session_id, "report.read")
    found = load(db, store, principal, row)
    if found.chosen is None:
        message = drafting(db, row)
        db.commit()
        raise NotFound(message)
    db.commit()
    return found


def edit_report(
    db: Session, store: KeyStore, principal: Principal, session_id: uuid.UUID, data: ReportEdit
) -> Version:
    """A new version from the therapist's edit of `data.based_on` (committed)."""
    row = report_session(db, principal, session_id, "report.edit")
    base = service.live_version(db, store, row, data.based_on)
    new = service.edit(
        db, store, principal.actor(), row, base.version, edited(base.report, data), data.note_format
    )
    db.commit()
    return new


def approve_report(
    db: Session, store: KeyStore, principal: Principal, session_id: uuid.UUID, data: ApproveRequest
) -> Version:
    row = report_session(db, principal, session_id, "report.approve")
    approval = Approval(data.release, tuple((s.start, s.end) for s in data.withhold))
    done = service.approve(db, store, principal.actor(), row, data.version, approval)
    db.commit()
    return done


def regenerate_report(
    db: Session, principal: Principal, session_id: uuid.UUID
) -> RegenerateAccepted:
    """Queue the session's report job again (a running one is left to finish: it drafts
    anew). The new draft supersedes the current one; an approval stays until replaced.
    Committed; the caller wakes the workers."""
    row = report_session(db, principal, session_id, "report.regenerate")
    if not consent.is_granted(db, row.patient_id, Purpose.ai_analysis):
        raise Conflict("the patient has not consented to AI analysis (ai_analysis)")
    found = report_job(db, row)
    if found is None:
        raise Conflict("this session has no recording to draft a report from")
    job = db.exec(select(Job).where(Job.id == found.id).with_for_update(), **jobs.FRESH).one()
    requeued = []
    if job.state not in (JobState.queued.value, JobState.running.value):
        jobs.requeue(job)
        db.add(job)
        requeued.append(job.id)
    record(
        db,
        principal.actor(),
        AuditEntry(
            "report.regenerate",
            "success",
            "session",
            str(row.id),
            row.patient_id,
            {"job_id": str(job.id), "requeued": bool(requeued)},
        ),
    )
    db.commit()
    return RegenerateAccepted(session_id=row.id, requeued=requeued, state=job.state)


def decide_flag(
    db: Session, store: KeyStore, principal: Principal, flag_id: uuid.UUID, data: FlagDecision
) -> flags.Flag:
    done = flags.decide(
        db,
        store,
        principal.actor(),
        access.visible_patient_ids(principal),
        flag_id,
        FlagStatus(data.decision),
        data.reason,
    )
    db.commit()
    return done


def inbox(db: Session, store: KeyStore, principal: Principal) -> list[RiskFlagInboxItem]:
    """The open flags of the therapist's patients, the longest waiting first (audited)."""
    principal.require(Role.therapist)
    found = flags.open_flags(db, store, access.visible_patient_ids(principal))
    patients = {
        p.id: p
        for p in db.exec(select(Patient).where(col(Patient.id).in_({f.patient_id for f in found})))
    }
    dates = {
        s.id: s.session_date
        for s in db.exec(
            select(TherapySession).where(col(TherapySession.id).in_({f.session_id for f in found}))
        )
    }
    names = {
        pid: patient_cipher(store, pid).open("patients", "name_enc", pid, p.name_enc)
        for pid, p in patients.items()
    }
    record(
        db,
        principal.actor(),
        AuditEntry(
            "risk_flag.list",
            object_type="risk_flag",
            details={
                "count": len(found),
                "flag_ids": [str(f.id) for f in found],
                "patient_ids": sorted({str(f.patient_id) for f in found}),
            },
        ),
    )
    db.commit()
    public = [flag_public(f) for f in found]
    return [
        RiskFlagInboxItem(
            id=f.id,
            session_id=f.session_id,
            session_date=dates[f.session_id],
            patient_id=f.patient_id,
            patient_name=names[f.patient_id],
            category=f.category.value,
            category_label=risk_label(f.category.value),
            utterances=p.utterances,
            created_at=f.created_at,
        )
        for f, p in zip(found, public, strict=True)
    ]


def own_profile(db: Session, principal: Principal) -> ProfilePublic:
    principal.require(Role.therapist)
    return profiles.get(db, principal.user_id)


def save_profile(db: Session, principal: Principal, data: ProfileUpdate) -> ProfilePublic:
    principal.require(Role.therapist)
    saved = profiles.update(db, principal.actor(), data)
    db.commit()
    return saved


# --- JSON API ------------------------------------------------------------------------------


class ReportController(Controller):
    path = "/api/v1/sessions"
    tags = ["reports"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/{session_id:uuid}/report", sync_to_thread=True)
    def report(
        self,
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> ReportPublic:
        """The newest draft (else the approved version) with its risk flags, sections in the
        clinic's note format, AI provenance and the list of versions. 404 until drafted."""
        return read_report(db_session, state.keystore, principal, session_id).public()

    @put("/{session_id:uuid}/report", sync_to_thread=True)
    def edit(
        self,
        session_id: FromPath[uuid.UUID],
        data: JSONBody[ReportEdit],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> ReportPublic:
        """Save an edit of version `based_on` as a new draft version. Send statements back
        with their `sources` to keep them; a changed or new statement is the therapist's."""
        edit_report(db_session, state.keystore, principal, session_id, data)
        return read_report(db_session, state.keystore, principal, session_id).public()

    @post("/{session_id:uuid}/report/approve", status_code=200, sync_to_thread=True)
    def approve(
        self,
        session_id: FromPath[uuid.UUID],
        data: JSONBody[ApproveRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> ReportPublic:
        """Approve the current draft: its homework and plan become the patient's facts;
        `withhold` passages are clinical-only; `release` lets the patient ask about the
        session. 409 while a risk flag of the session is open."""
        approve_report(db_session, state.keystore, principal, session_id, data)
        return read_report(db_session, state.keystore, principal, session_id).public()

    @post("/{session_id:uuid}/report/regenerate", sync_to_thread=True)
    def regenerate(
        self,
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[RegenerateAccepted]:
        """Draft the report again (202: the new draft appears when the job is done)."""
        accepted = regenerate_report(db_session, principal, session_id)
        state.queue.wake()
        return Response(accepted, status_code=HTTP_202_ACCEPTED)


class RiskFlagController(Controller):
    path = "/api/v1/risk-flags"
    tags = ["reports"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def open_flags(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> list[RiskFlagInboxItem]:
        """Open risk flags of my patients, the longest waiting first (therapists)."""
        return inbox(db_session, state.keystore, principal)

    @post("/{flag_id:uuid}/decision", status_code=200, sync_to_thread=True)
    def decision(
        self,
        flag_id: FromPath[uuid.UUID],
        data: JSONBody[FlagDecision],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> RiskFlagPublic:
        """Acknowledge or dismiss an open flag, with a reason (kept sealed)."""
        return flag_public(decide_flag(db_session, state.keystore, principal, flag_id, data))


class ProfileController(Controller):
    """The signed-in therapist's writing profile: it shapes the wording of report drafts."""

    path = "/api/v1/me/profile"
    tags = ["reports"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def show(
        self, principal: NamedDependency[Principal], db_session: NamedDependency[Session]
    ) -> ProfilePublic:
        return own_profile(db_session, principal)

    @put("/", sync_to_thread=True)
    def save(
        self,
        data: JSONBody[ProfileUpdate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> ProfilePublic:
        """Example notes must be de-identified: they are shown to the local model."""
        return save_profile(db_session, principal, data)
