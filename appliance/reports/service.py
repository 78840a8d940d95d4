"""A session's report versions: storing a draft, reading, editing, approving.

Versions are append-only: an edit is a new version (`source = therapist`, `based_on` the one it
started from) and the AI provenance (model id, prompt hash) stays with it. Approval needs every
risk flag of the session decided; it turns the approved homework and plan into the session's
facts (what the patient's homework list and the chat use), may withhold passages as
clinical-only and may release the session for the patient's questions, all in one transaction.

Only a therapist assigned to the patient reads or changes a report: the session is looked up
through `visible_patient_ids` in SQL by the callers, and `_require_therapist` checks the role.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, delete, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.models import Role
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Conflict, Invalid, NotFound
from appliance.jobs.service import now_utc
from appliance.pipeline import documents
from appliance.recordings import service as sessions
from appliance.recordings.models import TherapySession
from appliance.reports import flags
from appliance.reports.document import (
    NoteFormat,
    Report,
    RiskStatus,
    Source,
    from_doc,
    to_doc,
)
from appliance.reports.models import ReportSource, ReportStatus, SessionReport
from appliance.reports.withheld import withhold
from appliance.retrieval.models import FactKind, SessionFact

TABLE = SessionReport.__tablename__


@dataclass(frozen=True)
class Version:
    """One decrypted version of a session's report."""

    id: uuid.UUID
    session_id: uuid.UUID
    patient_id: uuid.UUID
    version: int
    status: ReportStatus
    source: ReportSource
    note_format: NoteFormat
    report: Report
    model_id: str | None
    prompt_hash: str | None
    based_on: int | None
    created_at: datetime
    approved_by: uuid.UUID | None
    approved_at: datetime | None


@dataclass(frozen=True)
class Approval:
    release: bool = False
    withhold: tuple[tuple[float, float], ...] = ()  # (start, end) seconds, clinical-only


def _open(store: KeyStore, row: SessionReport) -> Version:
    cipher = patient_cipher(store, row.patient_id)
    doc = documents.open_sealed(cipher, TABLE, row.id, row.body_enc)
    return Version(
        row.id,
        row.session_id,
        row.patient_id,
        row.version,
        ReportStatus(row.status),
        ReportSource(row.source),
        NoteFormat(row.note_format),
        from_doc(doc),
        row.model_id,
        row.prompt_hash,
        row.based_on,
        row.created_at,
        row.approved_by,
        row.approved_at,
    )


def _rows(session: Session, session_id: uuid.UUID) -> list[SessionReport]:
    return list(
        session.exec(
            select(SessionReport)
            .where(SessionReport.session_id == session_id)
            .order_by(col(SessionReport.version))
        ).all()
    )


def _add_version(
    session: Session,
    store: KeyStore,
    row: TherapySession,
    report: Report,
    *,
    note_format: NoteFormat,
    source: ReportSource,
    model_id: str | None,
    prompt_hash: str | None,
    created_by: uuid.UUID | None,
    based_on: int | None = None,
) -> SessionReport:
    """A new draft version; earlier drafts are superseded (the approved one stays)."""
    session.exec(  # serialises versions of one session: the row lock is held to commit
        select(TherapySession).where(TherapySession.id == row.id).with_for_update()
    ).one()
    existing = _rows(session, row.id)
    for old in existing:
        if old.status == ReportStatus.draft.value:
            old.status = ReportStatus.superseded.value
            session.add(old)
    report_id = uuid.uuid4()
    cipher = patient_cipher(store, row.patient_id)
    new = SessionReport(
        id=report_id,
        session_id=row.id,
        patient_id=row.patient_id,
        version=max((r.version for r in existing), default=0) + 1,
        status=ReportStatus.draft.value,
        source=source.value,
        note_format=note_format.value,
        body_enc=documents.seal(cipher, TABLE, report_id, to_doc(report)),
        model_id=model_id,
        prompt_hash=prompt_hash,
        based_on=based_on,
        created_by=created_by,
    )
    session.add(new)
    session.flush()
    return new


def store_draft(
    session: Session,
    store: KeyStore,
    row: TherapySession,
    report: Report,
    *,
    note_format: NoteFormat,
    model_id: str,
    prompt_hash: str,
) -> uuid.UUID:
    """The report stage's output: a new AI draft and an open flag for each new risk it found
    (caller commits; audited as the system)."""
    new = _add_version(
        session,
        store,
        row,
        report,
        note_format=note_format,
        source=ReportSource.ai,
        model_id=model_id,
        prompt_hash=prompt_hash,
        created_by=None,
    )
    raised = flags.raise_flags(
        session, store, new, [f for f in report.risk if f.status == RiskStatus.flagged]
    )
    record(
        session,
        Actor(role="system"),
        AuditEntry(
            "report.draft",
            "success",
            "session",
            str(row.id),
            row.patient_id,
            {
                "version": new.version,
                "model_id": model_id,
                "prompt_hash": prompt_hash,
                "risk_flags": raised,
            },
        ),
    )
    return new.id


def versions(session: Session, store: KeyStore, actor: Actor, row: TherapySession) -> list[Version]:
    """Every version of the session's report, oldest first (audited as one read)."""
    _require_therapist(session, actor, row, "report.read")
    found = [_open(store, r) for r in _rows(session, row.id)]
    record(
        session,
        actor,
        AuditEntry("report.read", "success", "session", str(row.id), row.patient_id),
    )
    return found


def current(found: Sequence[Version]) -> Version | None:
    """What the therapist works on: the newest draft or approval (superseded ones are history)."""
    live = [v for v in found if v.status != ReportStatus.superseded]
    return live[-1] if live else None


def approved(found: Sequence[Version]) -> Version | None:
    return next((v for v in found if v.status == ReportStatus.approved), None)


def edit(
    session: Session,
    store: KeyStore,
    actor: Actor,
    row: TherapySession,
    based_on: int,
    report: Report,
    note_format: NoteFormat | None = None,
) -> Version:
    """The therapist's edit of version `based_on`, as a new draft version (caller commits)."""
    _require_therapist(session, actor, row, "report.edit")
    base = live_version(session, store, row, based_on)
    new = _add_version(
        session,
        store,
        row,
        report,
        note_format=note_format or base.note_format,
        source=ReportSource.therapist,
        model_id=base.model_id,
        prompt_hash=base.prompt_hash,
        created_by=actor.user_id,
        based_on=base.version,
    )
    record(
        session,
        actor,
        AuditEntry(
            "report.edit",
            "success",
            "session",
            str(row.id),
            row.patient_id,
            {"version": new.version, "based_on": base.version},
        ),
    )
    return _open(store, new)


def approve(
    session: Session,
    store: KeyStore,
    actor: Actor,
    row: TherapySession,
    version: int,
    approval: Approval,
) -> Version:
    """Approve `version` (the current draft): its homework and plan become the session's
    facts; passages may be withheld and the session released (caller commits)."""
    _require_therapist(session, actor, row, "report.approve")
    chosen = live_version(session, store, row, version)
    if chosen.status != ReportStatus.draft:
        raise Conflict(f"version {version} is already {chosen.status.value}")
    undecided = flags.open_count(session, row.id)
    if undecided:
        raise Conflict(
            f"{undecided} risk flag(s) of this session are still open: acknowledge or dismiss "
            "each, with a reason, before approving"
        )
    for spans in approval.withhold:
        if not 0 <= spans[0] < spans[1]:
            raise Invalid("a withheld passage must start at or after 0 and end after it starts")
    moment = now_utc()
    session.execute(
        update(SessionReport)
        .where(col(SessionReport.session_id) == row.id)
        .where(col(SessionReport.status) == ReportStatus.approved.value)
        .values(status=ReportStatus.superseded.value)
    )
    target = session.get(SessionReport, chosen.id)
    assert target is not None
    target.status, target.approved_by, target.approved_at = (
        ReportStatus.approved.value,
        actor.user_id,
        moment,
    )
    session.add(target)
    facts = _replace_facts(session, store, actor, row, chosen.report)
    withheld = withhold(session, actor, row, approval.withhold)
    session.flush()
    record(
        session,
        actor,
        AuditEntry(
            "report.approve",
            "success",
            "session",
            str(row.id),
            row.patient_id,
            {
                "version": chosen.version,
                "source": chosen.source.value,
                "model_id": chosen.model_id,
                "prompt_hash": chosen.prompt_hash,
                "facts": facts,
                "withheld": withheld,
                "release": approval.release,
            },
        ),
    )
    if approval.release:
        sessions.release(session, actor, row)
    return _open(store, target)


def _replace_facts(
    session: Session, store: KeyStore, actor: Actor, row: TherapySession, report: Report
) -> int:
    """The approved report's homework and plan replace the session's facts."""
    from appliance.retrieval import facts

    session.execute(delete(SessionFact).where(col(SessionFact.session_id) == row.id))
    count = 0
    for item in report.homework:
        start, end = _span(item.sources)
        facts.add(
            session,
            store,
            actor,
            row,
            FactKind.homework,
            item.what,
            start=start,
            end=end,
            frequency=item.how_often,
            due=item.due,
            approved=True,
        )
        count += 1
    for statement in report.plan:
        start, end = _span(statement.sources)
        facts.add(
            session,
            store,
            actor,
            row,
            FactKind.plan,
            statement.text,
            start=start,
            end=end,
            approved=True,
        )
        count += 1
    return count


def _span(sources: Sequence[Source]) -> tuple[float, float]:
    if not sources:
        return 0.0, 0.0
    return min(s.start for s in sources), max(s.end for s in sources)


def live_version(session: Session, store: KeyStore, row: TherapySession, version: int) -> Version:
    """One version that is not superseded (404 if there is none by that number, 409 if it
    was replaced). The caller has authorised the session."""
    found = session.exec(
        select(SessionReport).where(
            SessionReport.session_id == row.id, SessionReport.version == version
        )
    ).first()
    if found is None:
        raise NotFound(f"this session's report has no version {version}")
    if found.status == ReportStatus.superseded.value:
        raise Conflict(f"version {version} was replaced by a later one; work on the current one")
    return _open(store, found)


def _require_therapist(session: Session, actor: Actor, row: TherapySession, action: str) -> None:
    """Reports are clinical notes: the patient's therapist only (admins manage, not write)."""
    if actor.role != Role.therapist.value or actor.user_id is None:
        record(session, actor, AuditEntry(action, "denied", "session", str(row.id), row.patient_id))
        session.commit()
        raise NotFound("no such session")
