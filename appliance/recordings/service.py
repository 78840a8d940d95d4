"""Therapy sessions: create, list (cursor pagination), update, release to the patient.

Visibility is the patient visibility of appliance.clinic.access, applied in SQL."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.models import Patient, Role, TherapistAssignment
from appliance.errors import Invalid, NotFound
from appliance.jobs import service as jobs
from appliance.jobs.schemas import JobPublic
from appliance.recordings.models import Recording, TherapySession
from appliance.recordings.schemas import (
    RecordingProgress,
    SessionCreate,
    SessionPage,
    SessionProgress,
    SessionPublic,
    SessionUpdate,
)

MAX_PAGE = 100


def add_session(session: Session, actor: Actor, data: SessionCreate) -> SessionPublic:
    """A session belongs to a patient and one of that patient's assigned therapists."""
    if session.get(Patient, data.patient_id) is None:
        raise NotFound("no such patient")
    therapist_id = data.therapist_id or (actor.user_id if actor.role == Role.therapist else None)
    if therapist_id is None or not _assigned(session, data.patient_id, therapist_id):
        raise Invalid("the therapist must be one of the patient's assigned therapists")
    row = TherapySession(
        patient_id=data.patient_id, therapist_id=therapist_id, session_date=data.session_date
    )
    session.add(row)
    session.flush()
    record(
        session,
        actor,
        AuditEntry("session.create", "success", "session", str(row.id), data.patient_id),
    )
    return SessionPublic.model_validate(row, from_attributes=True)


def get_session(
    session: Session,
    visible_patients: Any,
    session_id: uuid.UUID,
    actor: Actor | None = None,
    action: str = "session.read",
) -> TherapySession:
    """The session if its patient is among `visible_patients` (a SQL selectable), else 404.
    With `actor`, a refused lookup is audited as `action` denied (and committed, though the
    request fails), exactly alike for someone else's session and for none."""
    row = session.exec(
        select(TherapySession).where(
            TherapySession.id == session_id,
            col(TherapySession.patient_id).in_(visible_patients),
        )
    ).first()
    if row is None:
        if actor is not None:
            record(session, actor, AuditEntry(action, "denied", "session", str(session_id)))
            session.commit()
        raise NotFound("no such session")
    return row


def list_sessions(
    session: Session,
    visible_patients: Any,
    *,
    patient_id: uuid.UUID | None = None,
    therapist_id: uuid.UUID | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    status: str | None = None,
    released: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> SessionPage:
    """Newest first; `cursor` continues after the last item of the previous page (keyset
    pagination: stable while rows are added, no OFFSET scans). The cursor holds a position
    only (date and id): filters are passed again with every page."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(TherapySession).where(col(TherapySession.patient_id).in_(visible_patients))
    if patient_id is not None:
        query = query.where(TherapySession.patient_id == patient_id)
    if therapist_id is not None:
        query = query.where(TherapySession.therapist_id == therapist_id)
    if date_from is not None:
        query = query.where(col(TherapySession.session_date) >= date_from)
    if date_to is not None:
        query = query.where(col(TherapySession.session_date) <= date_to)
    if status is not None:
        query = query.where(TherapySession.status == status)
    if released is not None:
        query = query.where(col(TherapySession.released).is_(released))
    if cursor is not None:
        after_date, after_id = _decode_cursor(cursor)
        query = query.where(
            (col(TherapySession.session_date) < after_date)
            | (
                (col(TherapySession.session_date) == after_date)
                & (col(TherapySession.id) < after_id)
            )
        )
    query = query.order_by(col(TherapySession.session_date).desc(), col(TherapySession.id).desc())
    rows = list(session.exec(query.limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    return SessionPage(
        items=[SessionPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=_encode_cursor(rows[-1]) if has_more and rows else None,
        has_more=has_more,
    )


def update_session(
    session: Session, actor: Actor, row: TherapySession, data: SessionUpdate
) -> SessionPublic:
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for field, value in changes.items():
        setattr(row, field, value.value if hasattr(value, "value") else value)
    session.add(row)
    session.flush()
    record(
        session,
        actor,
        AuditEntry(
            "session.update",
            "success",
            "session",
            str(row.id),
            row.patient_id,
            details={"fields": sorted(changes)},
        ),
    )
    return SessionPublic.model_validate(row, from_attributes=True)


def release(session: Session, actor: Actor, row: TherapySession) -> SessionPublic:
    """Let the patient ask about this session. Only a therapist assigned to the patient may."""
    if (
        actor.role != Role.therapist
        or actor.user_id is None
        or not _assigned(session, row.patient_id, actor.user_id)
    ):
        record(
            session,
            actor,
            AuditEntry("session.release", "denied", "session", str(row.id), row.patient_id),
        )
        session.commit()
        raise Invalid("only a therapist of this patient can release a session")
    if not row.released:
        row.released, row.released_at, row.released_by = True, datetime.now(UTC), actor.user_id
        session.add(row)
        session.flush()
    record(
        session,
        actor,
        AuditEntry("session.release", "success", "session", str(row.id), row.patient_id),
    )
    return SessionPublic.model_validate(row, from_attributes=True)


def _assigned(session: Session, patient_id: uuid.UUID, therapist_id: uuid.UUID) -> bool:
    found = session.exec(
        select(TherapistAssignment).where(
            TherapistAssignment.patient_id == patient_id,
            TherapistAssignment.therapist_id == therapist_id,
        )
    ).first()
    return found is not None


def _encode_cursor(row: TherapySession) -> str:
    raw = json.dumps([row.session_date.isoformat(), str(row.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[date, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        day, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return date.fromisoformat(day), uuid.UUID(row_id)
    except (ValueError, TypeError, binascii.Error):
        raise Invalid("invalid cursor") from None


def progress(session: Session, row: TherapySession) -> SessionProgress:
    """Each recording of the session with its stages (state, progress, attempts, error)."""
    recordings = session.exec(
        select(Recording)
        .where(Recording.session_id == row.id)
        .order_by(col(Recording.created_at).desc())
    ).all()
    items = []
    for recording in recordings:
        stages = [
            JobPublic.model_validate(job, from_attributes=True)
            for job in jobs.for_recording(session, recording.id)
        ]
        items.append(
            RecordingProgress(
                recording_id=recording.id,
                created_at=recording.created_at,
                duration_seconds=recording.duration_seconds,
                stages=stages,
                # Cancelled stages (no consent, or stopped by an administrator) end the work.
                done=all(job.state in ("succeeded", "cancelled") for job in stages),
            )
        )
    return SessionProgress(session_id=row.id, status=row.status, recordings=items)
