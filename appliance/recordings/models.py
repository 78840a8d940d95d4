"""Therapy sessions (appointments) and their uploaded recordings."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class SessionStatus(StrEnum):
    scheduled = "scheduled"
    recorded = "recorded"
    cancelled = "cancelled"


class TherapySession(SQLModel, table=True):
    __tablename__ = "therapy_sessions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('scheduled', 'recorded', 'cancelled')", name="therapy_session_status_known"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    therapist_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    session_date: date = Field(sa_type=Date, index=True)
    status: str = Field(default=SessionStatus.scheduled.value, sa_type=String(16))
    # Whether the therapist let the patient ask about this session (default: not).
    released: bool = False
    released_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    released_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Recording(SQLModel, table=True):
    """An uploaded recording: the encrypted file's metadata. The original file name is sealed
    (names like "bob-brennan-session-3.m4a" are PHI); the file on disk has a generated name."""

    __tablename__ = "recordings"
    __table_args__ = (
        UniqueConstraint("session_id", "idempotency_key", name="recordings_idempotency"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="therapy_sessions.id", index=True, ondelete="CASCADE")
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    original_name_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    size_bytes: int = Field(sa_type=BigInteger)
    sha256: str = Field(sa_type=String(64))
    container: str = Field(sa_type=String(32))
    codec: str = Field(sa_type=String(32))
    duration_seconds: float
    sample_rate: int
    channels: int
    idempotency_key: str | None = Field(default=None, sa_type=String(128))
    uploaded_by: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
