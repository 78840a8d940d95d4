"""The audit log tables. Append-only: the app's role may only SELECT and INSERT, and a trigger
refuses UPDATE, DELETE and TRUNCATE from anyone (see migration 0002)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Identity, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class AuditEvent(SQLModel, table=True):
    """Who did what to which object, when, from where, with what outcome. Ids only, never PHI."""

    __tablename__ = "audit_events"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    ts: datetime = Field(sa_type=DateTime(timezone=True))
    actor_id: uuid.UUID | None = None
    actor_role: str = Field(sa_type=String(16))
    action: str = Field(sa_type=String(64), index=True)
    object_type: str | None = Field(default=None, sa_type=String(32))
    object_id: str | None = Field(default=None, sa_type=String(64))
    patient_id: uuid.UUID | None = Field(default=None, index=True)
    outcome: str = Field(sa_type=String(16))
    ip: str | None = Field(default=None, sa_type=String(45))
    user_agent: str | None = Field(default=None, sa_type=String(256))
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    prev_hash: str = Field(sa_type=String(64))
    hash: str = Field(sa_type=String(64), unique=True)


class AuditCheckpoint(SQLModel, table=True):
    """An Ed25519 signature over the chain's head at one moment."""

    __tablename__ = "audit_checkpoints"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    event_id: int = Field(sa_type=BigInteger)
    event_hash: str = Field(sa_type=String(64))
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    key_id: str = Field(sa_type=String(32))
    signature: str = Field(sa_type=String(128))
