"""The patient's own consents, in plain language, with one button to give or withdraw each.

Withdrawing must be exactly as easy as giving (GDPR art. 7(3)): the same single button, no
confirmation step, no reason asked. The change goes through the consent ledger like any other
(`consent.change`: an appended row, jobs waiting on the purpose cancelled or resumed, audited),
recorded with `method = portal` and the patient as the actor. The patient id always comes
from the signed-in account, never from the form.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from appliance.audit.service import Actor, AuditEntry, record
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.consent.schemas import ConsentEventPublic
from appliance.web.i18n import lazy_gettext as _l

HISTORY_SHOWN = 20


@dataclass(frozen=True)
class Meaning:
    """What a purpose means for the patient: a title, what it allows, what withdrawing does."""

    title: str
    allows: str
    withdrawing: str


MEANINGS: dict[Purpose, Meaning] = {
    Purpose.recording: Meaning(
        _l("Recording your sessions"),
        _l(
            "Your therapist may record the sound of your sessions. Recordings are kept "
            "encrypted on the clinic's own server and never leave the clinic."
        ),
        _l(
            "No new recordings of your sessions can be added, and recordings waiting to be "
            "processed are not processed. Recordings already made stay until you ask the "
            "clinic to delete them."
        ),
    ),
    Purpose.transcription: Meaning(
        _l("Writing down what was said"),
        _l(
            "A program on the clinic's server turns recordings into written text (a "
            "transcript) for your therapist. Nothing is sent to other companies."
        ),
        _l(
            "Recordings are no longer turned into text, and your therapist can no longer open "
            "the transcripts of your sessions."
        ),
    ),
    Purpose.ai_analysis: Meaning(
        _l("Draft notes for your therapist"),
        _l(
            "A language model on the clinic's server drafts session notes and homework lists "
            "from the transcript. Your therapist checks and corrects every draft."
        ),
        _l(
            "No more drafts are made; your therapist writes notes and messages to you "
            "without the model's help."
        ),
    ),
    Purpose.patient_chat: Meaning(
        _l("Asking about your sessions here"),
        _l(
            "You can ask questions about the sessions your therapist released to you, and see "
            "your homework list in this portal."
        ),
        _l(
            "The Ask page and your homework list are turned off. Your earlier questions and "
            "answers are kept, and you can still download them under My data."
        ),
    ),
}


@dataclass(frozen=True)
class Current:
    """One purpose as the page shows it."""

    purpose: Purpose
    meaning: Meaning
    granted: bool
    asked: bool  # False: never recorded either way
    since: datetime | None
    method: str | None


@dataclass(frozen=True)
class Overview:
    purposes: list[Current]
    history: list[ConsentEventPublic]  # newest first, at most HISTORY_SHOWN


def overview(session: Session, actor: Actor, patient_id: uuid.UUID) -> Overview:
    """Every purpose's current state and the latest changes (the read is audited)."""
    states = consent.current(session, patient_id)
    purposes = [
        Current(
            purpose=state.purpose,
            meaning=MEANINGS[state.purpose],
            granted=state.status == ConsentStatus.granted.value,
            asked=state.status != "none",
            since=state.since,
            method=state.method,
        )
        for state in states
    ]
    history = list(reversed(consent.history(session, patient_id)))[:HISTORY_SHOWN]
    record(
        session,
        actor,
        AuditEntry(
            "portal.consents", "success", "patient", str(patient_id), patient_id,
            {"events": len(history)},
        ),
    )  # fmt: skip
    return Overview(purposes, history)


def decide(
    session: Session, actor: Actor, patient_id: uuid.UUID, purpose: Purpose, give: bool
) -> None:
    """Give or withdraw one purpose, recorded as the patient's own portal decision (audited
    by the ledger as `consent.grant` / `consent.revoke`; the caller commits)."""
    status = ConsentStatus.granted if give else ConsentStatus.revoked
    consent.change(session, actor, patient_id, [purpose], status, ConsentMethod.portal)
