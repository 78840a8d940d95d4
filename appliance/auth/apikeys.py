"""API keys for integrations (`X-API-Key`): random, shown once, stored as sha256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from appliance.auth.models import ApiKey
from appliance.clinic.models import Role, User
from appliance.clinic.service import find_user
from appliance.errors import Invalid, NotFound

PREFIX = "apl_"


@dataclass(frozen=True)
class IssuedKey:
    id: uuid.UUID
    key: str  # the only time the secret exists outside the caller's hands
    prefix: str
    role: str


def issue(session: Session, user_email: str, name: str, role: Role | None = None) -> IssuedKey:
    """A key acting as `user_email`, scoped to `role` (at most the user's own role)."""
    user = find_user(session, user_email)
    if user is None or not user.is_active:
        raise NotFound("no active user with this e-mail address")
    scope = role.value if role is not None else user.role
    if scope != user.role:
        raise Invalid("an API key can only carry its user's own role")
    secret = PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(user_id=user.id, name=name, prefix=secret[:12], key_hash=_hash(secret), role=scope)
    session.add(row)
    session.flush()
    return IssuedKey(row.id, secret, row.prefix, scope)


def authenticate(session: Session, presented: str) -> tuple[ApiKey, User] | None:
    if not presented.startswith(PREFIX) or len(presented) > 128:
        return None
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == _hash(presented))).first()
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    row.last_used_at = datetime.now(UTC)
    session.add(row)
    session.commit()
    return row, user


def revoke(session: Session, key_id: uuid.UUID) -> None:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound("no such API key")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
        session.flush()


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))))


def _hash(secret: str) -> str:
    # The key is 256 bits of randomness: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()
