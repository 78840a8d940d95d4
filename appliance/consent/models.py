"""The consent ledger: one immutable row per grant or revocation. The current state of a
purpose is its latest row. Rows are never updated (the app role has no UPDATE on the table);
they are deleted only with the patient, on erasure."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    LargeBinary,
    String,
)
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class Purpose(StrEnum):
    recording = "recording"
    transcription = "transcription"
    ai_analysis = "ai_analysis"
    patient_chat = "patient_chat"


class ConsentStatus(StrEnum):
    granted = "granted"
    revoked = "revoked"


class ConsentMethod(StrEnum):
    in_person = "in_person"
    paper = "paper"
    portal = "portal"


class ConsentEvent(SQLModel, table=True):
    __tablename__ = "consent_events"
    __table_args__ = (
        CheckConstraint("status IN ('granted', 'revoked')", name="consent_status_known"),
        CheckConstraint("method IN ('in_person', 'paper', 'portal')", name="consent_method_known"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    # A string, not a database enum: purposes are extendable without a migration.
    purpose: str = Field(sa_type=String(32))
    status: str = Field(sa_type=String(16))
    method: str = Field(sa_type=String(16))
    actor_id: uuid.UUID | None = None
    actor_role: str = Field(sa_type=String(16))
    evidence_sha256: str | None = Field(default=None, sa_type=String(64))
    ip: str | None = Field(default=None, sa_type=String(45))
    user_agent: str | None = Field(default=None, sa_type=String(256))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class ConsentEvidence(SQLModel, table=True):
    """A scan or photo of a signed paper consent form: the file is encrypted with the patient's
    data key under `files/`; its name is encrypted here; `sha256` (of the plaintext) is what the
    consent event's `evidence_sha256` names."""

    __tablename__ = "consent_evidence"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    consent_event_id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger, ForeignKey("consent_events.id", ondelete="CASCADE"), nullable=True
        ),
    )
    file_name_enc: bytes = Field(sa_type=LargeBinary)
    content_type: str = Field(sa_type=String(100))
    size_bytes: int = Field(sa_type=BigInteger)
    sha256: str = Field(sa_type=String(64))
    stored_as: str = Field(sa_type=String(100), unique=True)
    created_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
