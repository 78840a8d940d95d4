"""Clinic, users and patients: the tables. None of these classes crosses HTTP (see schemas.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Column, DateTime, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    admin = "admin"
    therapist = "therapist"
    patient = "patient"
    auditor = "auditor"


ROLE_CHECK = "role IN ('admin', 'therapist', 'patient', 'auditor')"


class Clinic(SQLModel, table=True):
    """The one clinic this appliance serves (a table, so every row can name its clinic)."""

    __tablename__ = "clinics"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_type=String(200))
    timezone: str = Field(sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    # What an administrator changed in the console (validated by clinic.preferences); a key
    # that is absent falls back to the configuration file.
    preferences: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )


class User(SQLModel, table=True):
    """A person who signs in: staff, auditors and (later) patients with a portal account.

    Staff names and e-mail addresses are not PHI; a patient's identifying fields live encrypted
    on `Patient`, never here.
    """

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="users_role_known"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    clinic_id: uuid.UUID = Field(foreign_key="clinics.id", index=True)
    email: str = Field(sa_type=String(254), unique=True)
    name: str = Field(sa_type=String(200))
    role: str = Field(sa_type=String(16))
    password_hash: str | None = Field(default=None, sa_type=String(256))
    # TOTP second factor: the secret sealed with a key derived from the session secret file,
    # and the last accepted time step (codes are single-use).
    totp_secret_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    totp_enabled: bool = False
    totp_last_step: int | None = Field(default=None, sa_type=BigInteger)
    is_active: bool = True
    locale: str | None = Field(default=None, sa_type=String(16))  # None: the browser's choice
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Patient(SQLModel, table=True):
    """A patient. Name and contact fields are AES-GCM ciphertexts under the patient's data key,
    bound to this table, column and row (see appliance.crypto)."""

    __tablename__ = "patients"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    clinic_id: uuid.UUID = Field(foreign_key="clinics.id", index=True)
    name_enc: bytes = Field(sa_type=LargeBinary)
    email_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class TherapistAssignment(SQLModel, table=True):
    """Which therapists care for which patient. Authorization joins through this table."""

    __tablename__ = "therapist_assignments"

    patient_id: uuid.UUID = Field(foreign_key="patients.id", primary_key=True, ondelete="CASCADE")
    therapist_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, index=True)
    assigned_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
