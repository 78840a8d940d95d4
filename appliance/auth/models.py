"""Sign-in state: server-side sessions, login attempts, API keys and rate-limit counters."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Identity, String
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class AuthSession(SQLModel, table=True):
    """A signed-in browser. Only the sha256 of the cookie's token is stored."""

    __tablename__ = "auth_sessions"

    token_hash: str = Field(sa_type=String(64), primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # An admin who must enrol a second factor may do only that until they have.
    needs_totp_enrolment: bool = False
    ip: str | None = Field(default=None, sa_type=String(45))


class LoginAttempt(SQLModel, table=True):
    """Recent failed sign-ins, for throttling. The account is a keyed hash, not the e-mail."""

    __tablename__ = "login_attempts"

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    account: str = Field(sa_type=String(64), index=True)
    ip: str = Field(sa_type=String(45), index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class ApiKey(SQLModel, table=True):
    """An integration's key: shown once, stored as sha256, scoped to a role, revocable."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(sa_type=String(100))
    prefix: str = Field(sa_type=String(16))
    key_hash: str = Field(sa_type=String(64), unique=True)
    role: str = Field(sa_type=String(16))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class RateLimitCounter(SQLModel, table=True):
    """Fixed-window counters shared by every process (web workers, CLI)."""

    __tablename__ = "rate_limit_counters"

    key: str = Field(sa_type=String(128), primary_key=True)
    window_start: datetime = Field(sa_type=DateTime(timezone=True), primary_key=True)
    count: int = 0


class PortalInvitation(SQLModel, table=True):
    """A one-time code that lets a patient set up their portal account. Only the code's
    sha256 is stored; the code itself is shown once to the staff member who made it."""

    __tablename__ = "portal_invitations"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    code_sha256: str = Field(sa_type=String(64), unique=True)
    created_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
