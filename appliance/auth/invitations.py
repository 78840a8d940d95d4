"""Portal invitations: a one-time code with which a patient sets up their own portal account.

The code is 12 characters from a 32-letter alphabet without look-alikes (no 0/O, 1/I), so 60
bits, grouped XXXX-XXXX-XXXX to read out over the phone. Only its sha256 is stored (a fast hash
is enough: 60 random bits behind a per-address throttle leave no dictionary to try), it lives
seven days, works once, and is shown once, to the staff member who made it, in a page body and
never in a URL.

Redeeming is throttled like a sign-in (the same failure counters, per address and per address
and "account", where the account is the join form itself), and every wrong, expired, used or
revoked code gets the same answer, so the form tells an attacker nothing about which codes
exist. Creating the user, linking them to the patient and marking the invitation used happen
in one transaction: a code can never make two accounts, and a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.auth import sessions, throttle
from appliance.auth.models import PortalInvitation
from appliance.clinic.models import Patient, Role
from appliance.clinic.schemas import UserCreate
from appliance.clinic.service import add_user, find_user, link_portal_user
from appliance.errors import Conflict, DomainError, Invalid, NotFound, TooManyRequests
from appliance.settings import Settings

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 letters: 5 bits each
LENGTH = 12  # 60 bits
LIFETIME = timedelta(days=7)
THROTTLE_ACCOUNT = "portal-join"  # the join form's own failure counter (keyed like an e-mail)
REFUSED = "that invitation code is not valid: check it, or ask your clinic for a new one"

State = Literal["pending", "used", "expired", "revoked"]


class InvitationRefused(DomainError):
    """Wrong, expired, used or revoked: one answer for all of them."""

    status_code = 400
    title = "Bad request"


@dataclass(frozen=True)
class Issued:
    id: uuid.UUID
    code: str  # the only time it exists outside the patient's hands
    expires_at: datetime


@dataclass(frozen=True)
class InvitationRow:
    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
    state: State


@dataclass(frozen=True)
class Joined:
    user_id: uuid.UUID
    patient_id: uuid.UUID
    session: sessions.NewSession


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, LENGTH, 4))


def normalise(code: str) -> str:
    """What the patient typed, as hashed: upper case, without spaces or dashes (typing it
    in lower case, or without the groups, still works)."""
    return "".join(ch for ch in code.upper() if ch.isascii() and ch.isalnum())


def code_hash(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def state_of(row: PortalInvitation, now: datetime | None = None) -> State:
    now = now or datetime.now(UTC)
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at <= now:
        return "expired"
    return "pending"


def has_portal_account(session: Session, patient_id: uuid.UUID) -> bool:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    return patient.user_id is not None


def create(session: Session, actor: Actor, patient_id: uuid.UUID) -> Issued:
    """A new code for a patient without a portal account (the caller checked that the actor
    may see the patient). Earlier pending codes stay valid until they expire or are revoked."""
    if actor.user_id is None:
        raise Invalid("only a signed-in staff member can invite")
    if has_portal_account(session, patient_id):
        raise Conflict("this patient already has a portal account")
    code = new_code()
    row = PortalInvitation(
        patient_id=patient_id,
        code_sha256=code_hash(code),
        created_by=actor.user_id,
        expires_at=datetime.now(UTC) + LIFETIME,
    )
    session.add(row)
    session.flush()
    record(
        session,
        actor,
        AuditEntry(
            "portal.invitation.create",
            object_type="portal_invitation",
            object_id=str(row.id),
            patient_id=patient_id,
        ),
    )
    return Issued(row.id, code, row.expires_at)


def list_for(session: Session, patient_id: uuid.UUID) -> list[InvitationRow]:
    rows = session.exec(
        select(PortalInvitation)
        .where(PortalInvitation.patient_id == patient_id)
        .order_by(col(PortalInvitation.created_at).desc())
    ).all()
    now = datetime.now(UTC)
    return [
        InvitationRow(r.id, r.created_at, r.expires_at, r.used_at, r.revoked_at, state_of(r, now))
        for r in rows
    ]


def revoke(session: Session, actor: Actor, patient_id: uuid.UUID, invitation_id: uuid.UUID) -> None:
    row = session.get(PortalInvitation, invitation_id, with_for_update=True)
    if row is None or row.patient_id != patient_id:
        raise NotFound("no such invitation")
    if state_of(row) != "pending":
        return  # used, expired or revoked already: nothing left to stop
    row.revoked_at = datetime.now(UTC)
    session.add(row)
    record(
        session,
        actor,
        AuditEntry(
            "portal.invitation.revoke",
            object_type="portal_invitation",
            object_id=str(row.id),
            patient_id=patient_id,
        ),
    )
    session.flush()


def redeem(
    session: Session,
    settings: Settings,
    server_secret: bytes,
    *,
    code: str,
    email: str,
    password: str,
    ip: str,
    user_agent: str | None,
    replaces: str | None,
) -> Joined:
    """Create the patient's portal user from a valid code, link it, use up the code and sign
    them in, in one transaction (committed here, like a sign-in, so refusals leave their
    trace). `settings` are the effective ones (the console's throttle knobs). An invalid
    e-mail address or password raises pydantic's ValidationError before anything is written
    or counted."""
    wanted = UserCreate(email=email, name="patient", role=Role.patient, password=password)
    anonymous = Actor(role="anonymous", ip=ip, user_agent=user_agent)
    account = throttle.account_key(server_secret, THROTTLE_ACCOUNT)
    decision = throttle.login_allowed(session, settings.auth, account, ip)
    if not decision.allowed:
        record(
            session, anonymous, AuditEntry("portal.join", "denied", details={"reason": "throttled"})
        )
        session.commit()
        raise TooManyRequests("too many attempts; try again later", decision.retry_after)

    row = session.exec(
        select(PortalInvitation)
        .where(PortalInvitation.code_sha256 == code_hash(code))
        .with_for_update()
    ).first()
    if row is None or state_of(row) != "pending" or has_portal_account(session, row.patient_id):
        throttle.record_failure(session, account, ip, settings.auth)
        record(session, anonymous, AuditEntry("portal.join", "failure", details={"reason": "code"}))
        session.commit()
        raise InvitationRefused(REFUSED)

    if find_user(session, wanted.email) is not None:
        session.rollback()
        raise Conflict("an account with this e-mail address exists already; sign in instead")
    user = add_user(session, anonymous, wanted)
    joined_actor = Actor(role=Role.patient.value, user_id=user.id, ip=ip, user_agent=user_agent)
    link_portal_user(session, joined_actor, row.patient_id, user.email)
    row.used_at = datetime.now(UTC)
    session.add(row)
    record(
        session,
        joined_actor,
        AuditEntry(
            "portal.join",
            "success",
            "portal_invitation",
            str(row.id),
            row.patient_id,
            details={"user_id": str(user.id)},
        ),
    )
    throttle.clear_failures(session, account, ip)
    new = sessions.start_session(session, settings, user.id, ip, replaces=replaces)
    session.commit()
    return Joined(user.id, row.patient_id, new)
