"""Signing in and enrolling a second factor. Every outcome is audited and committed here, so a
refused sign-in leaves its trace even though the request fails."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from sqlmodel import Session

from appliance.audit.service import Actor, AuditEntry, record
from appliance.auth import sessions, throttle, totp
from appliance.auth.models import AuthSession
from appliance.clinic.models import Role, User
from appliance.clinic.passwords import hash_password, verify_password
from appliance.clinic.preferences import effective_settings
from appliance.clinic.schemas import UserPublic
from appliance.clinic.service import find_user, user_public
from appliance.errors import Conflict, DomainError, Invalid, NotFound, TooManyRequests
from appliance.settings import Settings

# Verified against when the e-mail is unknown, so both failures cost the same time.
_DUMMY_HASH = hash_password("not a real password, only for timing")


class SignInRefused(DomainError):
    status_code = 401
    title = "Unauthorized"


@dataclass(frozen=True)
class SignIn:
    user: UserPublic
    session: sessions.NewSession
    needs_totp_enrolment: bool


def sign_in(
    session: Session,
    settings: Settings,
    server_secret: bytes,
    *,
    email: str,
    password: str,
    totp_code: str | None,
    ip: str,
    user_agent: str | None,
    replaces: str | None,
) -> SignIn:
    settings = effective_settings(settings, session)  # the console's sign-in throttle knobs
    account = throttle.account_key(server_secret, email)
    actor = Actor(role="anonymous", ip=ip, user_agent=user_agent)
    decision = throttle.login_allowed(session, settings.auth, account, ip)
    if not decision.allowed:
        record(session, actor, AuditEntry("auth.login", "denied", details={"reason": "throttled"}))
        session.commit()
        raise TooManyRequests("too many failed sign-ins; try again later", decision.retry_after)

    user = find_user(session, email)
    password_ok = verify_password(
        password, user.password_hash if user and user.password_hash else _DUMMY_HASH
    )
    ok = bool(user and user.is_active and user.password_hash and password_ok)
    reason = "credentials"
    if ok and user is not None and user.totp_enabled and user.totp_secret_enc is not None:
        secret = totp.open_secret(server_secret, user.id, user.totp_secret_enc)
        step = totp.accept(secret, totp_code or "", user.totp_last_step)
        if step is None:
            ok, reason = False, "totp"
        else:
            user.totp_last_step = step
            session.add(user)

    if not ok or user is None:
        throttle.record_failure(session, account, ip, settings.auth)
        who = Actor(
            role=user.role if user else "anonymous",
            user_id=user.id if user else None,
            ip=ip,
            user_agent=user_agent,
        )
        record(session, who, AuditEntry("auth.login", "failure", details={"reason": reason}))
        session.commit()
        if reason == "totp":
            raise SignInRefused("a valid one-time code from your authenticator is required")
        raise SignInRefused("invalid e-mail address or password")  # same for unknown users

    throttle.clear_failures(session, account, ip)
    enrol = (
        user.role == Role.admin and settings.auth.require_totp_for_admin and not user.totp_enabled
    )
    new = sessions.start_session(
        session, settings, user.id, ip, needs_totp_enrolment=enrol, replaces=replaces
    )
    signed_in = Actor(role=user.role, user_id=user.id, ip=ip, user_agent=user_agent)
    record(session, signed_in, AuditEntry("auth.login", "success", "user", str(user.id)))
    session.commit()
    return SignIn(user_public(user), new, enrol)


def begin_totp(
    session: Session, server_secret: bytes, actor: Actor, issuer: str
) -> tuple[str, str]:
    """A new (not yet active) secret for the actor; returns (base32 secret, otpauth URI)."""
    user = _user(session, actor)
    secret = totp.new_secret()
    user.totp_secret_enc = totp.seal_secret(server_secret, user.id, secret)
    user.totp_enabled = False
    session.add(user)
    record(
        session, actor, AuditEntry("auth.totp.begin", object_type="user", object_id=str(user.id))
    )
    session.commit()
    return base64.b32encode(secret).decode(), totp.provisioning_uri(secret, user.email, issuer)


def pending_totp(
    session: Session, server_secret: bytes, actor: Actor, issuer: str
) -> tuple[str, str] | None:
    """The secret shown before but not confirmed yet (sealed in users.totp_secret_enc while
    totp_enabled is false), as (base32 secret, otpauth URI); None when there is none or it
    is on already. Pages show it again on reload, so a key already typed into a phone keeps
    working until it is confirmed or the user asks for a new one."""
    user = _user(session, actor)
    if user.totp_enabled or user.totp_secret_enc is None:
        return None
    secret = totp.open_secret(server_secret, user.id, user.totp_secret_enc)
    return base64.b32encode(secret).decode(), totp.provisioning_uri(secret, user.email, issuer)


def key_to_show(
    session: Session, server_secret: bytes, actor: Actor, issuer: str, *, fresh: bool
) -> tuple[str, str]:
    """The key for the authenticator app on the console's and the portal's set-up pages: the
    pending one again, or a new one when none is pending or the user asked for one (`fresh`).
    Refused while one is on: replacing it would switch the second factor off with a session
    alone."""
    if totp_is_on(session, actor):
        raise Conflict("your authenticator is on already; turn it off first to replace it")
    shown = None if fresh else pending_totp(session, server_secret, actor, issuer=issuer)
    return shown or begin_totp(session, server_secret, actor, issuer=issuer)


def totp_is_on(session: Session, actor: Actor) -> bool:
    return _user(session, actor).totp_enabled


def confirm_totp(
    session: Session, server_secret: bytes, actor: Actor, code: str, token_hash: str | None
) -> None:
    user = _user(session, actor)
    if user.totp_secret_enc is None:
        raise Invalid("start enrolment first")
    step = totp.accept(
        totp.open_secret(server_secret, user.id, user.totp_secret_enc), code, user.totp_last_step
    )
    if step is None:
        record(session, actor, AuditEntry("auth.totp.enable", "failure", "user", str(user.id)))
        session.commit()
        raise Invalid("that code is not valid; check the authenticator's clock and try again")
    user.totp_enabled, user.totp_last_step = True, step
    session.add(user)
    if token_hash is not None:
        current = session.get(AuthSession, token_hash)
        if current is not None:
            current.needs_totp_enrolment = False
            session.add(current)
    record(session, actor, AuditEntry("auth.totp.enable", "success", "user", str(user.id)))
    session.commit()


def set_active(session: Session, actor: Actor, email: str, active: bool) -> int:
    """Enable or disable an account; disabling ends every session at once."""
    user = find_user(session, email)
    if user is None:
        raise NotFound("no user with this e-mail address")
    user.is_active = active
    session.add(user)
    ended = 0 if active else sessions.revoke_all(session, user.id)
    record(
        session,
        actor,
        AuditEntry(
            "user.enable" if active else "user.disable",
            object_type="user",
            object_id=str(user.id),
            details={"sessions_ended": ended},
        ),
    )
    return ended


def set_password(session: Session, actor: Actor, email: str, password: str) -> None:
    """Set a user's password (Argon2id). The caller has validated its length."""
    user = find_user(session, email)
    if user is None:
        raise NotFound("no user with this e-mail address")
    user.password_hash = hash_password(password)
    session.add(user)
    record(session, actor, AuditEntry("user.password", object_type="user", object_id=str(user.id)))


def _user(session: Session, actor: Actor) -> User:
    user = session.get(User, actor.user_id) if actor.user_id else None
    if user is None:
        raise NotFound("no such user")
    return user
