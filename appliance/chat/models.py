"""Patient chat tables: conversations, their messages (sealed), and crisis alerts.

Messages are the patient's own words and the appliance's answers: PHI, sealed with the
patient's key. The rate limit counts the patient's questions in SQL from this table, so no
second store can disagree with it. Alerts hold no text at all: the category and the ids.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, LargeBinary, String
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class ChatTurn(SQLModel, table=True):
    """One question or one answer. `reason` is why an answer is a refusal (not_found,
    out_of_scope, crisis), null for a cited answer and for questions."""

    __tablename__ = "chat_turns"
    __table_args__ = (
        CheckConstraint("role IN ('patient', 'assistant')", name="chat_turn_role_known"),
        Index("ix_chat_turns_patient_created", "patient_id", "role", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    conversation_id: uuid.UUID = Field(
        foreign_key="conversations.id", index=True, ondelete="CASCADE"
    )
    patient_id: uuid.UUID = Field(foreign_key="patients.id", ondelete="CASCADE")
    role: str = Field(sa_type=String(16))
    reason: str | None = Field(default=None, sa_type=String(32))
    body_enc: bytes = Field(sa_type=LargeBinary)  # {"text", "citations"}
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class CrisisAlert(SQLModel, table=True):
    """Crisis language in a patient's question: the therapist is alerted (a console badge
    until acknowledged). The question itself stays sealed in `chat_turns`."""

    __tablename__ = "crisis_alerts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    turn_id: uuid.UUID = Field(foreign_key="chat_turns.id", ondelete="CASCADE")
    category: str = Field(sa_type=String(32))
    rule: str = Field(sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    acknowledged_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    acknowledged_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
