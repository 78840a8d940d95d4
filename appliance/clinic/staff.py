"""Staff accounts as an administrator manages them in the console: list, add, change role,
disable and enable. Plain functions; the caller commits.

New staff get an initial password from the administrator (who hands it over in person or by
phone, as clinics do with keys) rather than a one-time set-password link: the appliance sends
no e-mail, and a code would need a table of its own. The password follows the same policy as
every other (12 to 1024 characters, NIST SP 800-63B: length, no composition rules);
administrators added this way must still enrol a second factor at their first sign-in.

The one rule that protects the clinic from itself: there is always at least one active
administrator, and nobody can demote or disable themselves (a slip of the mouse would
otherwise lock the clinic out of its own console).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.auth.service import set_active
from appliance.clinic.models import Role, User
from appliance.clinic.schemas import UserCreate, UserPublic
from appliance.clinic.service import add_user
from appliance.errors import Conflict, Invalid, NotFound

STAFF_ROLES = (Role.admin, Role.therapist, Role.auditor)


@dataclass(frozen=True)
class StaffRow:
    id: uuid.UUID
    name: str
    email: str
    role: str
    is_active: bool
    totp_enabled: bool


def list_staff(session: Session) -> list[StaffRow]:
    """Every staff account, administrators first; patients' portal accounts are managed
    with their patient, not here."""
    order = {role.value: n for n, role in enumerate(STAFF_ROLES)}
    rows = session.exec(
        select(User).where(col(User.role).in_([r.value for r in STAFF_ROLES]))
    ).all()
    return [
        StaffRow(u.id, u.name, u.email, u.role, u.is_active, u.totp_enabled)
        for u in sorted(rows, key=lambda u: (order[u.role], u.name.casefold()))
    ]


def active_therapists(session: Session) -> list[User]:
    rows = session.exec(
        select(User).where(User.role == Role.therapist.value, col(User.is_active).is_(True))
    ).all()
    return sorted(rows, key=lambda u: u.name.casefold())


def add_staff(session: Session, actor: Actor, data: UserCreate) -> UserPublic:
    if data.role not in STAFF_ROLES:
        raise Invalid("staff are administrators, therapists or auditors")
    if not data.password:
        raise Invalid("give the new account an initial password")
    return add_user(session, actor, data)


def change_role(session: Session, actor: Actor, user_id: uuid.UUID, role: Role) -> None:
    user = _staff(session, user_id)
    if role not in STAFF_ROLES:
        raise Invalid("staff are administrators, therapists or auditors")
    if user.role == role.value:
        return
    if user.role == Role.admin.value:
        _keep_an_admin(session, actor, user)
    before = user.role
    user.role = role.value
    session.add(user)
    record(
        session,
        actor,
        AuditEntry(
            "user.role.change",
            object_type="user",
            object_id=str(user.id),
            details={"from": before, "to": role.value},
        ),
    )
    session.flush()


def set_staff_active(session: Session, actor: Actor, user_id: uuid.UUID, active: bool) -> int:
    """Enable or disable; disabling ends every session of the account at once (and its API
    keys stop working, since they act as the user). Returns the sessions ended."""
    user = _staff(session, user_id)
    if not active and actor.user_id == user.id:
        raise Conflict("you cannot demote or disable yourself; ask another administrator")
    if not active and user.is_active and user.role == Role.admin.value:
        _keep_an_admin(session, actor, user)
    return set_active(session, actor, user.email, active)


def _keep_an_admin(session: Session, actor: Actor, user: User) -> None:
    """Refuse to take away `user`'s administration if it is the actor's own or the last one.
    The active administrators are locked, so two admins demoting each other at once cannot
    both succeed."""
    if actor.user_id == user.id:
        raise Conflict("you cannot demote or disable yourself; ask another administrator")
    admins = session.exec(
        select(User.id)
        .where(User.role == Role.admin.value, col(User.is_active).is_(True))
        .with_for_update()
    ).all()
    if len(admins) <= 1 and user.id in admins:
        raise Conflict("the clinic needs at least one active administrator")


def _staff(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or user.role not in [r.value for r in STAFF_ROLES]:
        raise NotFound("no such staff account")
    return user
