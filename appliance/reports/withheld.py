"""Clinical-only passages: stretches of a session the therapist withholds from the patient.

They are kept as spans beside the chunks, and applied to the chunks whenever a recording is
chunked (again), so that re-chunking cannot make a withheld passage visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from appliance.audit.service import Actor
from appliance.errors import Invalid
from appliance.recordings.models import TherapySession
from appliance.reports.models import WithheldSpan
from appliance.retrieval.models import TranscriptChunk


def withhold(
    session: Session, actor: Actor, row: TherapySession, spans: Sequence[tuple[float, float]]
) -> int:
    """Mark stretches of the session clinical-only: kept as spans (re-chunking applies them
    again) and applied to the current chunks at once. Returns how many chunks it hid."""
    if not spans:
        return 0
    if actor.user_id is None:
        raise Invalid("only a therapist can withhold passages")
    for start, end in spans:
        session.add(
            WithheldSpan(
                session_id=row.id,
                patient_id=row.patient_id,
                start_seconds=start,
                end_seconds=end,
                created_by=actor.user_id,
            )
        )
    session.flush()
    return apply_withheld(session, row.id)


def apply_withheld(session: Session, session_id: uuid.UUID) -> int:
    """Hide every chunk of the session that overlaps a withheld span (idempotent)."""
    overlapping = (
        select(WithheldSpan.id)
        .where(WithheldSpan.session_id == session_id)
        .where(col(WithheldSpan.start_seconds) < col(TranscriptChunk.end_seconds))
        .where(col(WithheldSpan.end_seconds) > col(TranscriptChunk.start_seconds))
        .exists()
    )
    result = session.execute(
        update(TranscriptChunk)
        .where(col(TranscriptChunk.session_id) == session_id)
        .where(col(TranscriptChunk.patient_visible).is_(True))
        .where(overlapping)
        .values(patient_visible=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
