"""What the patient portal reads: the patient's homework, their conversation, and the cited
minute of a recording. Plain functions; every read is limited in SQL to the signed-in patient,
their released sessions and their current `patient_chat` consent, and audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, exists
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.chat.models import ChatTurn, Conversation
from appliance.chat.schemas import CitationPublic
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Invalid, NotFound
from appliance.pipeline import documents
from appliance.pipeline.transcripts import recording_at
from appliance.portal.listen import LONGEST, clip_wav
from appliance.recordings.models import TherapySession
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind, TranscriptChunk
from appliance.retrieval.search import patient_scope, searchable_sessions
from appliance.settings import Settings

HISTORY_TURNS = 20
EDGE = 0.5  # seconds of rounding a citation's times may carry


@dataclass(frozen=True)
class Turn:
    role: str  # "patient" or "assistant"
    text: str
    reason: str | None
    citations: tuple[CitationPublic, ...]


@dataclass(frozen=True)
class History:
    id: uuid.UUID | None
    turns: tuple[Turn, ...]


def homework(
    session: Session, store: KeyStore, actor: Actor, patient_id: uuid.UUID
) -> list[facts.Fact]:
    """The approved homework items of the patient's released sessions, newest session first."""
    found = facts.approved_for(
        session, store, patient_id, searchable_sessions(session, patient_id), [FactKind.homework]
    )
    found.sort(key=lambda fact: (fact.session_date, -fact.start), reverse=True)
    record(
        session,
        actor,
        AuditEntry(
            "portal.homework", "success", "patient", str(patient_id), patient_id,
            {"items": len(found)},
        ),
    )  # fmt: skip
    return found


def latest_conversation(session: Session, store: KeyStore, patient_id: uuid.UUID) -> History:
    """The patient's most recent conversation, oldest turn first (their own words: no consent
    needed to read them back)."""
    current = session.exec(
        select(Conversation)
        .where(Conversation.patient_id == patient_id)
        .order_by(col(Conversation.updated_at).desc())
        .limit(1)
    ).first()
    if current is None:
        return History(None, ())
    rows = session.exec(
        select(ChatTurn)
        .where(ChatTurn.conversation_id == current.id, ChatTurn.patient_id == patient_id)
        .order_by(col(ChatTurn.created_at).desc())
        .limit(HISTORY_TURNS)
    ).all()
    cipher = patient_cipher(store, patient_id)
    turns = []
    for row in reversed(rows):
        body = documents.open_sealed(cipher, ChatTurn.__tablename__, row.id, row.body_enc)
        cited = tuple(CitationPublic.model_validate(c) for c in body.get("citations", []))
        turns.append(Turn(row.role, body["text"], row.reason, cited))
    return History(current.id, tuple(turns))


def cited_clip(
    session: Session,
    settings: Settings,
    store: KeyStore,
    actor: Actor,
    patient_id: uuid.UUID,
    session_id: uuid.UUID,
    start: float,
    end: float,
) -> bytes:
    """`start`..`end` seconds of one of the patient's sessions as WAV, if a passage the patient
    may see begins the window and no clinical-only passage overlaps it; else 404, audited.
    A window that does not end after it starts is refused (422): nothing was said there."""
    if not 0 <= start < 24 * 3600 or end < 0:
        raise Invalid("start and end are seconds from the start of the session")
    if not facts.has_span(start, end):
        # An empty window is no moment of the session (a therapist's typed homework item is
        # 0..0): playing a default stretch from `start` would play something unrelated.
        raise Invalid("a passage to play must end after it starts")
    end = min(end, start + LONGEST)
    visible = exists().where(
        col(TranscriptChunk.session_id) == col(TherapySession.id),
        col(TranscriptChunk.patient_id) == patient_id,
        col(TranscriptChunk.patient_visible).is_(True),
        col(TranscriptChunk.start_seconds) <= start + EDGE,
        col(TranscriptChunk.end_seconds) > start,
    )
    withheld = exists().where(
        col(TranscriptChunk.session_id) == col(TherapySession.id),
        col(TranscriptChunk.patient_id) == patient_id,
        col(TranscriptChunk.patient_visible).is_(False),
        and_(col(TranscriptChunk.start_seconds) < end, col(TranscriptChunk.end_seconds) > start),
    )
    row = session.exec(
        select(TherapySession)
        .where(TherapySession.id == session_id, *patient_scope(patient_id))
        .where(visible, ~withheld)
    ).first()
    details: dict[str, Any] = {"start": round(start, 2), "end": round(end, 2)}
    if row is None:
        _audit(session, actor, "denied", session_id, patient_id, details)
        session.commit()
        raise NotFound("no such passage")
    recording, offset = recording_at(session, row, start)
    wav = clip_wav(settings, store, recording, offset, offset + (end - start))
    _audit(session, actor, "success", session_id, patient_id, details)
    session.commit()
    return wav


def _audit(
    session: Session,
    actor: Actor,
    outcome: Literal["success", "denied"],
    session_id: uuid.UUID,
    patient_id: uuid.UUID,
    details: dict[str, Any],
) -> None:
    entry = AuditEntry("portal.listen", outcome, "session", str(session_id), patient_id, details)
    record(session, actor, entry)
