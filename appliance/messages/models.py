"""The `patient_messages` table: a message from a therapist to a patient's portal inbox.

A message is drafted (by the local model or by the therapist), submitted for approval, and
approved by a therapist of the patient's, which sends it; or it is rejected. The subject and
body are one sealed JSON document under the patient's key, bound to this table and row.

The database itself refuses a sent message without a recorded approval (check constraints
below): whatever code path writes the row, the patient's inbox (`state = 'sent'`) can only
ever hold messages a person approved. A message the patient read must have been sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Index, LargeBinary, String
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class MessageState(StrEnum):
    draft = "draft"  # editable; nobody but staff sees it
    pending = "pending"  # submitted: waiting for a therapist's approval
    approved = "approved"  # approved, within the transaction that sends it (never committed)
    sent = "sent"  # in the patient's portal inbox
    rejected = "rejected"  # discarded; terminal


class MessageSource(StrEnum):
    ai = "ai"  # the local model wrote the wording around the approved homework
    template = "template"  # the model failed, said nothing usable or lacked consent
    therapist = "therapist"  # written by the therapist


class PatientMessage(SQLModel, table=True):
    __tablename__ = "patient_messages"
    __table_args__ = (
        CheckConstraint(
            "state IN ('draft', 'pending', 'approved', 'sent', 'rejected')",
            name="patient_message_state_known",
        ),
        CheckConstraint(
            "source IN ('ai', 'template', 'therapist')", name="patient_message_source_known"
        ),
        CheckConstraint(
            "state NOT IN ('approved', 'sent') OR "
            "(approved_by IS NOT NULL AND approved_at IS NOT NULL)",
            name="patient_message_sent_only_approved",
        ),
        CheckConstraint(
            "state <> 'sent' OR sent_at IS NOT NULL", name="patient_message_sent_has_time"
        ),
        CheckConstraint(
            "state <> 'rejected' OR (rejected_by IS NOT NULL AND rejected_at IS NOT NULL)",
            name="patient_message_rejection_recorded",
        ),
        CheckConstraint("read_at IS NULL OR state = 'sent'", name="patient_message_read_only_sent"),
        Index("ix_patient_messages_patient_state", "patient_id", "state"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", ondelete="CASCADE")
    session_id: uuid.UUID | None = Field(
        default=None, foreign_key="therapy_sessions.id", index=True, ondelete="CASCADE"
    )
    therapist_id: uuid.UUID = Field(foreign_key="users.id")  # the author, who asked for it
    state: str = Field(default=MessageState.draft.value, sa_type=String(16))
    source: str = Field(sa_type=String(16))
    body_enc: bytes = Field(sa_type=LargeBinary)  # {"subject", "body"}
    # Bumped by every edit: an approval names the revision the therapist read.
    revision: int = 1
    # AI provenance: which weights and which prompt drafted it (kept through edits).
    model_id: str | None = Field(default=None, sa_type=String(200))
    prompt_hash: str | None = Field(default=None, sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    submitted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    approved_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    approved_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    rejected_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    rejected_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    read_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
