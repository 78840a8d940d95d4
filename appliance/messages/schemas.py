"""What crosses HTTP about patient messages. The table class never does: staff get
`MessagePublic` (state, provenance, who approved), a patient only `InboxMessagePublic` of a
sent message (no state, no drafts, no model)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field
from sqlmodel import SQLModel

SUBJECT_MAX = 200
BODY_MAX = 4000


class MessageCreate(SQLModel):
    """A therapist's own message; it starts as a draft like a drafted one."""

    patient_id: uuid.UUID
    session_id: uuid.UUID | None = None
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX)
    body: str = Field(min_length=1, max_length=BODY_MAX)


class MessageUpdate(SQLModel):
    """An edit. `revision`, when given, must be the one the editor read (else 409)."""

    subject: str | None = Field(default=None, min_length=1, max_length=SUBJECT_MAX)
    body: str | None = Field(default=None, min_length=1, max_length=BODY_MAX)
    revision: int | None = None


class DraftReminderRequest(SQLModel):
    session_id: uuid.UUID


class ApproveRequest(SQLModel):
    """Approval names the revision the therapist read: a text changed since is not approved."""

    revision: int


class MessagePublic(SQLModel):
    id: uuid.UUID
    patient_id: uuid.UUID
    patient_name: str
    session_id: uuid.UUID | None
    therapist_id: uuid.UUID
    state: str
    source: str
    subject: str
    body: str
    revision: int
    model_id: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    approved_by: uuid.UUID | None
    approved_at: datetime | None
    sent_at: datetime | None
    rejected_by: uuid.UUID | None
    rejected_at: datetime | None
    read_at: datetime | None


class InboxMessagePublic(SQLModel):
    """A sent message as its patient reads it."""

    id: uuid.UUID
    subject: str
    body: str
    sender_name: str
    sent_at: datetime
    read_at: datetime | None
