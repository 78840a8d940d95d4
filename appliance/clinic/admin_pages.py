"""Console administration: the admin index, clinic settings, staff accounts and roles.

Administrators only (everyone else gets 403). Forms are posted as text and validated by the
services, so a wrong value re-renders the form with the reason and what was typed (422), and
nothing is saved: each form is one transaction, committed only when every check passed.
"""

from __future__ import annotations

import uuid
import zoneinfo
from functools import cache
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from pydantic import ValidationError
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import Principal
from appliance.clinic import preferences, staff
from appliance.clinic.models import Role
from appliance.clinic.schemas import UserCreate
from appliance.errors import DomainError, describe_validation_error
from appliance.web.i18n import _, lazy_gettext
from appliance.web.pages import PageController, page, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)

# (path, label, description): the admin index. Pages built elsewhere are listed only when the
# running app has them, so the index never links to a 404.
ADMIN_PAGES = (
    (
        "/console/admin/clinic",
        lazy_gettext("Clinic settings"),
        lazy_gettext("Name, time zone, crisis text, note format and rate limits."),
    ),
    (
        "/console/admin/users",
        lazy_gettext("Users and roles"),
        lazy_gettext("Add staff, change roles, disable accounts."),
    ),
    (
        "/console/admin/patients",
        lazy_gettext("Patients and therapists"),
        lazy_gettext("Add patients and assign their therapists."),
    ),
    (
        "/console/admin/api-keys",
        lazy_gettext("API keys"),
        lazy_gettext("Keys for integrations: create, see once, revoke."),
    ),
    ("/console/jobs", lazy_gettext("Jobs"), lazy_gettext("Processing progress, retries.")),
    ("/console/models", lazy_gettext("Models"), lazy_gettext("What is loaded, where.")),
    ("/console/keys", lazy_gettext("Key rotation"), lazy_gettext("Encryption keys.")),
    ("/console/audit", lazy_gettext("Audit log"), lazy_gettext("Who did what, with filters.")),
    ("/console/errors", lazy_gettext("Errors"), lazy_gettext("Recent errors of the appliance.")),
)

NOTE_FORMATS = (
    ("soap", lazy_gettext("SOAP (subjective, objective, assessment, plan)")),
    ("dap", lazy_gettext("DAP (data, assessment, plan)")),
    ("birp", lazy_gettext("BIRP (behaviour, intervention, response, plan)")),
    ("summary", lazy_gettext("Free summary")),
)
ROLE_LABELS = {
    "admin": lazy_gettext("Administrator"),
    "therapist": lazy_gettext("Therapist"),
    "auditor": lazy_gettext("Auditor"),
}
USER_NOTICES = {
    "added": lazy_gettext("The account was added. Give them their initial password in person."),
    "role": lazy_gettext("The role was changed."),
    "disabled": lazy_gettext("The account was disabled and its sessions ended."),
    "enabled": lazy_gettext("The account was enabled."),
}


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


class ClinicForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    clinic_name: str = Field(default="", max_length=1000)
    timezone: str = Field(default="", max_length=100)
    crisis_text: str = Field(default="", max_length=10000)
    questions_per_hour: str = Field(default="", max_length=20)
    note_format: str = Field(default="", max_length=20)
    login_window_minutes: str = Field(default="", max_length=20)
    max_failures_per_account_and_ip: str = Field(default="", max_length=20)
    max_failures_per_ip: str = Field(default="", max_length=20)


class StaffForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    name: str = Field(default="", max_length=1000)
    email: str = Field(default="", max_length=1000)
    role: str = Field(default="", max_length=20)
    password: str = Field(default="", max_length=2048)
    password_again: str = Field(default="", max_length=2048)


class RoleForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    role: str = Field(default="", max_length=20)


class ActiveForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    active: bool = False


class AdminPages(PageController):
    path = "/console/admin"

    @get("/")
    async def index(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> Template:
        principal.require(Role.admin)
        served = {route.path for route in request.app.routes}
        links = [(path, label, hint) for path, label, hint in ADMIN_PAGES if path in served]
        return page(request, "admin_index.html", principal, title=_("Administration"), links=links)

    @get("/clinic", sync_to_thread=True)
    def clinic(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        overrides = preferences.load(db_session)
        current = preferences.effective(state.settings, overrides)
        return self._clinic_page(
            request,
            principal,
            current.model_dump(),
            overrides,
            notice=_("The clinic settings were saved.") if done == "saved" else None,
        )

    @post("/clinic", sync_to_thread=True)
    def save_clinic(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[ClinicForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.admin)
        changes = data.model_dump(exclude={"csrf_token"})
        try:
            preferences.save(db_session, state.settings, principal.actor(), changes)
        except DomainError as refused:
            db_session.rollback()
            return self._clinic_page(
                request,
                principal,
                changes,
                preferences.load(db_session),
                status_code=refused.status_code,
                error=_("Nothing was saved. %(reason)s") % {"reason": str(refused)},
            )
        db_session.commit()
        return see_other("/console/admin/clinic?done=saved")

    def _clinic_page(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        values: dict[str, Any],
        overridden: dict[str, Any],
        **context: Any,
    ) -> Template:
        return page(
            request,
            "admin_clinic.html",
            principal,
            title=_("Clinic settings"),
            values=values,
            overridden=set(overridden),
            time_zones=time_zones(),
            note_formats=NOTE_FORMATS,
            **context,
        )

    @get("/users", sync_to_thread=True)
    def users(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        return self._users_page(request, principal, db_session, notice=USER_NOTICES.get(done or ""))

    @post("/users", sync_to_thread=True)
    def add_user(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[StaffForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        principal.require(Role.admin)
        typed = {"name": data.name, "email": data.email, "role": data.role}
        try:
            if data.password != data.password_again:
                raise ValueError(_("the two passwords differ"))
            created = UserCreate(
                name=data.name, email=data.email, role=Role(data.role), password=data.password
            )
            staff.add_staff(db_session, principal.actor(), created)
        except (ValidationError, ValueError, DomainError) as refused:
            db_session.rollback()
            return self._users_page(
                request,
                principal,
                db_session,
                status_code=getattr(refused, "status_code", 422),
                error=_refusal(refused),
                typed=typed,
            )
        db_session.commit()
        return see_other("/console/admin/users?done=added")

    @post("/users/{user_id:uuid}/role", sync_to_thread=True)
    def change_role(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[uuid.UUID],
        data: Annotated[RoleForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        principal.require(Role.admin)
        try:
            role = Role(data.role)
            staff.change_role(db_session, principal.actor(), user_id, role)
        except (ValueError, DomainError) as refused:
            db_session.rollback()
            return self._users_page(
                request,
                principal,
                db_session,
                status_code=getattr(refused, "status_code", 422),
                error=_refusal(refused),
            )
        db_session.commit()
        return see_other("/console/admin/users?done=role")

    @post("/users/{user_id:uuid}/active", sync_to_thread=True)
    def set_active(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[uuid.UUID],
        data: Annotated[ActiveForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        principal.require(Role.admin)
        try:
            staff.set_staff_active(db_session, principal.actor(), user_id, data.active)
        except DomainError as refused:
            db_session.rollback()
            return self._users_page(
                request,
                principal,
                db_session,
                status_code=refused.status_code,
                error=_refusal(refused),
            )
        db_session.commit()
        return see_other(f"/console/admin/users?done={'enabled' if data.active else 'disabled'}")

    def _users_page(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: Session,
        **context: Any,
    ) -> Template:
        return page(
            request,
            "admin_users.html",
            principal,
            title=_("Users and roles"),
            users=staff.list_staff(db_session),
            roles=ROLE_LABELS,
            **context,
        )


def _refusal(refused: Exception) -> str:
    """A refusal as one line for the form: which field and why, never the value typed."""
    if isinstance(refused, ValidationError):
        return describe_validation_error(refused, _("Please check the form"))
    return _(str(refused))
