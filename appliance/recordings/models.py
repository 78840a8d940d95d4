"""Therapy sessions (appointments). Recordings and their jobs join these in the ingest work."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, DateTime, String
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
