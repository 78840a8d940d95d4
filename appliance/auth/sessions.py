"""Server-side cookie sessions: a random token in the cookie, its sha256 in the database.

A new token at every sign-in (no fixation), idle and absolute expiry, and revocation of every
session of a user on logout-everywhere or when the account is disabled.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select, update

from appliance.auth.models import AuthSession
from appliance.settings import Settings

SECURE_COOKIE = "__Host-appliance_session"  # HTTPS: Secure, Path=/, no Domain
PLAIN_COOKIE = "appliance_session"  # development over http://localhost only


def cookie_name(settings: Settings) -> str:
    return SECURE_COOKIE if settings.web.cookie_secure else PLAIN_COOKIE


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime


def start_session(
    session: Session,
    settings: Settings,
    user_id: uuid.UUID,
    ip: str | None,
    *,
    needs_totp_enrolment: bool = False,
    replaces: str | None = None,
) -> NewSession:
    if replaces:  # the cookie the browser came with never becomes a signed-in session
        revoke(session, replaces)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    expires = now + timedelta(hours=settings.auth.session_absolute_hours)
    session.add(
        AuthSession(
            token_hash=token_hash(token),
            user_id=user_id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
            ip=ip,
            needs_totp_enrolment=needs_totp_enrolment,
        )
    )
    session.flush()
    return NewSession(token, csrf, expires)


def resolve(session: Session, settings: Settings, token: str) -> AuthSession | None:
    """The live session for a cookie token, touched; None when unknown, revoked or expired."""
    row = session.get(AuthSession, token_hash(token))
    if row is None or row.revoked_at is not None:
        return None
    now = datetime.now(UTC)
    idle = timedelta(minutes=settings.auth.session_idle_minutes)
    if now >= row.expires_at or now - row.last_seen_at >= idle:
        row.revoked_at = now
        session.add(row)
        session.commit()
        return None
    if now - row.last_seen_at > timedelta(seconds=30):  # spare a write on every request
        row.last_seen_at = now
        session.add(row)
        session.commit()
    return row


def revoke(session: Session, token: str) -> None:
    session.execute(
        update(AuthSession)
        .where(
            col(AuthSession.token_hash) == token_hash(token), col(AuthSession.revoked_at).is_(None)
        )
        .values(revoked_at=datetime.now(UTC))
    )


def revoke_all(session: Session, user_id: uuid.UUID) -> int:
    live = session.exec(
        select(AuthSession).where(
            AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None)
        )
    ).all()
    for row in live:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
    session.flush()
    return len(live)
