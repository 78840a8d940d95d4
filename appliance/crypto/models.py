"""Wrapped per-patient data keys. The unwrapped key never touches the database."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, String
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class DataKey(SQLModel, table=True):
    __tablename__ = "data_keys"

    patient_id: uuid.UUID = Field(foreign_key="patients.id", primary_key=True, ondelete="CASCADE")
    version: int = Field(default=1, primary_key=True)
    kek_id: str = Field(sa_type=String(64))
    wrapped_key: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
