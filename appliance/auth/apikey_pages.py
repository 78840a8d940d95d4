"""Console: API keys for integrations (administrators only). The service is
appliance.auth.apikeys, the same one `appliance apikeys` uses.

A new key's secret is in the body of the POST's own response and nowhere else: not in a
redirect, not in a URL, not in the log or the audit entry; the database keeps its sha256. A
reload of that page does not show it again (the browser would re-post and make another key,
which is why the page says so and the list shows only prefixes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel, col, select

from appliance.audit.service import AuditEntry, record
from appliance.auth import apikeys
from appliance.auth.guards import Principal
from appliance.auth.models import ApiKey
from appliance.clinic.models import Role, User
from appliance.clinic.staff import STAFF_ROLES
from appliance.errors import DomainError, Invalid
from appliance.web.i18n import _
from appliance.web.pages import PageController, page, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


class KeyForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    name: str = Field(default="", max_length=1000)
    user_id: str = Field(default="", max_length=64)


class RevokeForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)


@dataclass(frozen=True)
class KeyRow:
    id: uuid.UUID
    name: str
    prefix: str
    role: str
    user_email: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def key_rows(session: Session) -> list[KeyRow]:
    rows = session.exec(
        select(ApiKey, User)
        .join(User, col(User.id) == col(ApiKey.user_id))
        .order_by(col(ApiKey.created_at).desc())
    ).all()
    return [
        KeyRow(k.id, k.name, k.prefix, k.role, u.email, k.created_at, k.last_used_at, k.revoked_at)
        for k, u in rows
    ]


class ApiKeyPages(PageController):
    path = "/console/admin/api-keys"

    @get("/", sync_to_thread=True)
    def keys(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        notice = _("The key was revoked; requests with it now fail.") if done == "revoked" else None
        return self._render(request, principal, db_session, notice=notice)

    @post("/", sync_to_thread=True)
    def create(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[KeyForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Template:
        """Issue a key acting as the chosen staff member, with their role."""
        principal.require(Role.admin)
        try:
            name = data.name.strip()
            if not 1 <= len(name) <= 100:
                raise Invalid(_("name the key (what it is for), up to 100 characters"))
            user = _staff_user(db_session, data.user_id)
            issued = apikeys.issue(db_session, user.email, name)
            record(
                db_session,
                principal.actor(),
                AuditEntry(
                    "apikey.create",
                    object_type="api_key",
                    object_id=str(issued.id),
                    details={"role": issued.role, "user_id": str(user.id)},
                ),
            )
        except DomainError as refused:
            db_session.rollback()
            return self._render(
                request,
                principal,
                db_session,
                status_code=refused.status_code,
                error=_(str(refused)),
                typed_name=data.name,
            )
        db_session.commit()
        return self._render(request, principal, db_session, status_code=201, issued=issued)

    @post("/{key_id:uuid}/revoke", sync_to_thread=True)
    def revoke(
        self,
        key_id: FromPath[uuid.UUID],
        data: Annotated[RevokeForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        principal.require(Role.admin)
        apikeys.revoke(db_session, key_id)  # NotFound -> the error page
        record(
            db_session,
            principal.actor(),
            AuditEntry("apikey.revoke", object_type="api_key", object_id=str(key_id)),
        )
        db_session.commit()
        return see_other("/console/admin/api-keys?done=revoked")

    def _render(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: Session,
        **context: Any,
    ) -> Template:
        staff = db_session.exec(
            select(User)
            .where(col(User.role).in_([r.value for r in STAFF_ROLES]), col(User.is_active))
            .order_by(col(User.name))
        ).all()
        return page(
            request,
            "admin_api_keys.html",
            principal,
            title=_("API keys"),
            keys=key_rows(db_session),
            staff=staff,
            **context,
        )


def _staff_user(session: Session, user_id: str) -> User:
    try:
        user = session.get(User, uuid.UUID(user_id))
    except ValueError:
        user = None
    if user is None or not user.is_active or user.role not in [r.value for r in STAFF_ROLES]:
        raise Invalid(_("choose an active staff member for the key to act as"))
    return user
