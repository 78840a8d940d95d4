"""Helpers for `tests/test_idor_sweep.py`: every route of the app with a path parameter, how to
fill each parameter with another patient's real object, and a clinic in which every kind of
patient-owned object exists for both bob and charlie.

The tables here are the sweep's coverage contract. A new route whose path parameter is in
neither `PATIENT_OWNED` nor a route of `NOT_PATIENT_OWNED` makes the sweep fail, so the IDOR
check cannot silently fall behind the app (OWASP ASVS 4.0.3 V4.2.1, HIPAA 164.312(a)(1))."""

from __future__ import annotations

import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from litestar import Litestar
from sqlmodel import col, select

from appliance.audit.service import Actor
from appliance.auth import invitations
from appliance.auth.guards import Principal
from appliance.auth.models import PortalInvitation
from appliance.chat import service as chat
from appliance.chat.models import CrisisAlert
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import evidence as consent_evidence
from appliance.consent import service as consent
from appliance.consent.models import ConsentEvidence, ConsentMethod, ConsentStatus, Purpose
from appliance.jobs.models import Job
from appliance.messages import service as messages
from appliance.messages.schemas import MessageCreate
from appliance.recordings.models import Recording
from appliance.reports.document import RiskFinding, RiskStatus, Source
from appliance.reports.flags import raise_flags
from appliance.reports.models import RiskCategory, RiskFlag, SessionReport
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind
from tests.chat_fakes import FakeChatModel
from tests.retrieval_fixtures import ALL, CHARLIES, SLEEP, Clinic

CRISIS_QUESTION = "I don't want to be here anymore"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

# Path parameter -> the patient-owned object it names (a key of `Owned.ids`). Each names
# something that belongs to exactly one patient, so another patient's (or an unassigned
# therapist's) request for it must read exactly like a request for nothing.
PATIENT_OWNED: dict[str, str] = {
    "patient_id": "patient",  # the patient record itself
    "session_id": "session",  # a therapy session: transcript, report, status, listen window
    "recording_id": "recording",  # the encrypted audio of a session
    "job_id": "job",  # a pipeline job of a patient's recording (retry)
    "flag_id": "flag",  # a risk flag raised in a patient's report
    "alert_id": "alert",  # a crisis alert raised by a patient's question
    "message_id": "message",  # a message to a patient (drafts and the patient's inbox)
    "evidence_id": "evidence",  # a scanned consent form
    "invitation_id": "invitation",  # a portal invitation code for a patient
    "fact_id": "fact",  # a homework item in a patient's approved report
    # The therapist in `.../therapists/{therapist_id}/remove` is not the patient's; the route
    # is owned through its `patient_id`, so the therapist's id is simply alice's.
    "therapist_id": "therapist",
}

# Routes with a path parameter that do not name a patient's object, and why.
NOT_PATIENT_OWNED: dict[str, str] = {
    "/static/{file_path:path}": "public style sheets and scripts, the same for everyone",
    "/schema/{path:str}": "the OpenAPI document, the same for everyone",
    "/portal/consents/{purpose:str}": "a consent purpose (an enum); always the signed-in "
    "patient's own consent, so no other patient can be named",
    "/console/admin/users/{user_id:uuid}/role": "staff and portal accounts, administrators "
    "only (role guard before any lookup; probed in the sweep's role check)",
    "/console/admin/users/{user_id:uuid}/active": "as .../role: administrators only",
    "/console/admin/api-keys/{key_id:uuid}/revoke": "API keys belong to staff, not patients; "
    "administrators only",
}

SWEPT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

# Well-formed requests, so that each route gets past its input validation to the ownership
# check (a 400/422 before the lookup would prove nothing). Keyed by (method, path template).
_API_REPORT_EDIT = {"based_on": 1, "summary": "Edited."}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/messages/{message_id:uuid}/approve"): {"revision": 1},
    ("POST", "/api/v1/risk-flags/{flag_id:uuid}/decision"): {
        "decision": "acknowledged",
        "reason": "seen",
    },
    ("PUT", "/api/v1/sessions/{session_id:uuid}/report"): _API_REPORT_EDIT,
    ("POST", "/api/v1/sessions/{session_id:uuid}/report/approve"): {"version": 1},
    ("POST", "/api/v1/sessions/{session_id:uuid}/speakers"): {
        "speaker": "SPEAKER_00",
        "role": "therapist",
    },
    ("POST", "/console/messages/{message_id:uuid}/approve"): {"revision": "1"},
    ("POST", "/console/patients/{patient_id:uuid}/consent"): {
        "purpose": "recording",
        "action": "revoked",
    },
    ("POST", "/console/patients/{patient_id:uuid}/sessions"): {"session_date": "2026-11-20"},
    ("POST", "/console/sessions/{session_id:uuid}/report/flags/{flag_id:uuid}"): {
        "decision": "acknowledged",
        "reason": "seen",
    },
    ("POST", "/console/sessions/{session_id:uuid}/speakers"): {
        "speaker": "SPEAKER_00",
        "role": "therapist",
    },
}
QUERIES: dict[str, str] = {
    "/api/v1/consent/{patient_id:uuid}/check": "?purpose=recording",
    "/portal/listen/{session_id:uuid}": "?start=0.00&end=1.00",
}
# Streamed uploads: (file field, text fields) sent as multipart/form-data.
MULTIPART: dict[str, tuple[str, dict[str, str]]] = {
    "/console/patients/{patient_id:uuid}/consent/paper": (
        "evidence",
        {"purpose": "recording", "action": "granted"},
    ),
    "/console/sessions/{session_id:uuid}/recording": ("recording", {}),
}
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # Litestar's template, e.g. /api/v1/sessions/{session_id:uuid}
    params: tuple[str, ...]

    def fill(self, ids: dict[str, uuid.UUID]) -> str:
        return PARAM.sub(lambda m: str(ids[PATIENT_OWNED[m.group(1)]]), self.path)


def routes_with_parameters(app: Litestar) -> list[Route]:
    """Every (method, path) with a path parameter, straight from the router."""
    found = {
        Route(method, route.path, tuple(PARAM.findall(route.path)))
        for route in app.routes
        for handler in route.route_handlers
        for method in handler.http_methods
        if method in SWEPT_METHODS and "{" in route.path
    }
    return sorted(found, key=lambda r: (r.path, r.method))


def unknown_routes(app: Litestar) -> list[str]:
    """Routes the sweep cannot fill: a parameter with no entry in `PATIENT_OWNED` on a route
    not in `NOT_PATIENT_OWNED`. Must stay empty."""
    return sorted(
        {
            f"{r.method} {r.path}"
            for r in routes_with_parameters(app)
            if r.path not in NOT_PATIENT_OWNED and any(p not in PATIENT_OWNED for p in r.params)
        }
    )


def patient_routes(app: Litestar) -> list[Route]:
    return [r for r in routes_with_parameters(app) if r.path not in NOT_PATIENT_OWNED]


@dataclass
class Owned:
    """One patient's objects of every kind a route can name."""

    ids: dict[str, uuid.UUID]


def _principal(user: UserPublic) -> Principal:
    return Principal(user.id, Role.therapist, "cli", "local", "pytest")


def build_owned(
    clinic: Clinic,
    people: dict[str, UserPublic],
    patient: PatientPublic,
    portal_name: str,
    script: Any,
) -> Owned:
    """A released, transcribed session with its report, a risk flag, a homework item, a sent
    message, a crisis alert, a scanned consent form and a portal invitation."""
    session, store, alice = clinic.session, clinic.store, people["alice"]
    therapist = Actor(role="therapist", user_id=alice.id)
    row = clinic.recorded(patient, alice, date(2026, 11, 12), script)
    recording = session.exec(select(Recording).where(Recording.session_id == row.id)).one()
    job = session.exec(select(Job).where(Job.recording_id == recording.id)).first()
    assert job is not None
    report = session.exec(select(SessionReport).where(SessionReport.session_id == row.id)).first()
    assert report is not None, "the fake pipeline drafts a report"
    finding = RiskFinding(RiskCategory.self_harm, RiskStatus.flagged, "", (Source(0, 1, "p"),))
    raise_flags(session, store, report, [finding])
    flag = session.exec(select(RiskFlag).where(RiskFlag.session_id == row.id)).one()
    fact = facts.add(session, store, therapist, row, FactKind.homework, "Walk", start=0.0,
                     end=0.0, approved=True)  # fmt: skip
    sent = messages.create(
        session,
        store,
        _principal(alice),
        MessageCreate(patient_id=patient.id, subject="Hi", body="Hello"),
    )
    pending = messages.submit(session, store, _principal(alice), sent.id)
    messages.approve(session, store, _principal(alice), sent.id, pending.revision)
    stored = consent_evidence.store(
        store, clinic.settings.files_dir, patient.id, io.BytesIO(PDF), "form.pdf"
    )
    events = consent.change(
        session, therapist, patient.id, [Purpose.recording], ConsentStatus.granted,
        ConsentMethod.paper, evidence=stored, store=store,
    )  # fmt: skip
    del events
    invitation = PortalInvitation(  # an old code from before the patient joined
        patient_id=patient.id,
        code_sha256=invitations.code_hash(invitations.new_code()),
        created_by=alice.id,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    session.add(invitation)
    session.commit()
    ask = Actor(role="patient", user_id=people[portal_name].id)
    chat.answer(chat.ChatContext(session, store, clinic.settings, ask, FakeChatModel()),
                patient.id, CRISIS_QUESTION)  # fmt: skip
    alert = session.exec(select(CrisisAlert).where(CrisisAlert.patient_id == patient.id)).one()
    evidence_row = session.exec(
        select(ConsentEvidence).where(col(ConsentEvidence.patient_id) == patient.id)
    ).one()
    session.commit()
    return Owned(
        {
            "patient": patient.id,
            "session": row.id,
            "recording": recording.id,
            "job": job.id,
            "flag": flag.id,
            "alert": alert.id,
            "message": sent.id,
            "evidence": evidence_row.id,
            "invitation": invitation.id,
            "fact": fact,
            "therapist": alice.id,
        }
    )


def clinic_of_two(
    clinic: Clinic, people: dict[str, UserPublic], bob: PatientPublic, charlie: PatientPublic
) -> dict[str, Owned]:
    clinic.consent(bob, *ALL, Purpose.ai_analysis)
    clinic.consent(charlie, *ALL, Purpose.ai_analysis)
    return {
        "bob": build_owned(clinic, people, bob, "bob", SLEEP),
        "charlie": build_owned(clinic, people, charlie, "charlie", CHARLIES),
    }
