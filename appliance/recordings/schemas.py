"""What crosses HTTP for therapy sessions."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlmodel import SQLModel

from appliance.jobs.schemas import JobPublic
from appliance.recordings.models import SessionStatus


class SessionCreate(SQLModel):
    patient_id: uuid.UUID
    session_date: date
    # Default: the signed-in therapist. Admins name one of the patient's therapists.
    therapist_id: uuid.UUID | None = None


class SessionUpdate(SQLModel):
    session_date: date | None = None
    status: SessionStatus | None = None


class SessionPublic(SQLModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    therapist_id: uuid.UUID
    session_date: date
    status: str
    released: bool
    released_at: datetime | None
    created_at: datetime


class SessionPage(SQLModel):
    items: list[SessionPublic]
    next_cursor: str | None
    has_more: bool


class JobRef(SQLModel):
    id: uuid.UUID
    stage: str
    state: str


class UploadAccepted(SQLModel):
    session_id: uuid.UUID
    recording_id: uuid.UUID
    duration_seconds: float
    size_bytes: int
    replayed: bool
    jobs: list[JobRef]  # follow them at GET /api/v1/sessions/{session_id}/status

    @classmethod
    def of(cls, accepted: Any) -> UploadAccepted:
        return cls(
            session_id=accepted.session_id,
            recording_id=accepted.recording_id,
            duration_seconds=accepted.duration_seconds,
            size_bytes=accepted.size_bytes,
            replayed=accepted.replayed,
            jobs=[JobRef(id=i, stage=stage, state=state) for i, stage, state in accepted.jobs],
        )


class RecordingProgress(SQLModel):
    recording_id: uuid.UUID
    created_at: datetime
    duration_seconds: float
    stages: list[JobPublic]  # in pipeline order
    done: bool  # every stage succeeded or was cancelled (no consent): nothing more will run


class SessionProgress(SQLModel):
    session_id: uuid.UUID
    status: str
    recordings: list[RecordingProgress]  # newest first
