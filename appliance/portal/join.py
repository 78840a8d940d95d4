"""Portal: join with an invitation code. The patient types the code from their clinic, their
e-mail address (from now on their sign-in name) and a new password twice; the account is made,
linked to their record, the code used up, and they are signed in, then offered an optional
second factor (appliance.portal.security).

Like the sign-in form, this form is posted before any session exists, so it carries no CSRF
token; it is defended the same way against cross-site posts (`refuse_cross_site`) and is
throttled per address (appliance.auth.invitations).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template
from pydantic import ValidationError
from sqlmodel import Field, Session, SQLModel

from appliance.auth import invitations, sessions
from appliance.auth.controllers import LOGIN_RATE, refuse_cross_site, session_cookie
from appliance.auth.guards import client_ip
from appliance.auth.throttle import enforce
from appliance.clinic.preferences import effective_settings
from appliance.errors import DomainError, TooManyRequests, describe_validation_error
from appliance.portal.pages import PortalPages
from appliance.web.i18n import _
from appliance.web.pages import PageController, page, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


class JoinForm(SQLModel):
    code: str = Field(default="", max_length=64)
    email: str = Field(default="", max_length=1000)
    password: str = Field(default="", max_length=2048)
    password_again: str = Field(default="", max_length=2048)


class JoinPages(PageController):
    path = "/portal/join"
    exception_handlers = PortalPages.exception_handlers

    @get("/", sync_to_thread=True)
    def join_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "portal_join.html", None, title=_("Join with an invitation code"))

    @post("/", sync_to_thread=True)
    def join(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[JoinForm, FORM],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        refuse_cross_site(request)
        ip = client_ip(request)
        enforce(db_session, f"login-ip:{ip}", *LOGIN_RATE)  # shared with sign-in: per address
        if data.password != data.password_again:
            return self._again(request, data, 422, _("The two passwords differ."))
        try:
            joined = invitations.redeem(
                db_session,
                effective_settings(state.settings, db_session),
                state.server_secret,
                code=data.code,
                email=data.email,
                password=data.password,
                ip=ip,
                user_agent=request.headers.get("user-agent"),
                replaces=request.cookies.get(sessions.cookie_name(state.settings)),
            )
        except ValidationError as invalid:
            db_session.rollback()
            return self._again(
                request, data, 422, describe_validation_error(invalid, _("Please check the form"))
            )
        except DomainError as refused:
            db_session.rollback()
            template = self._again(request, data, refused.status_code, _(str(refused)))
            if isinstance(refused, TooManyRequests):
                template.headers["Retry-After"] = str(refused.retry_after)
            return template
        response = see_other("/portal/security?welcome=1")
        response.set_cookie(session_cookie(state.settings, joined.session.token))
        return response

    def _again(
        self, request: Request[Any, Any, Any], data: JoinForm, status: int, error: str
    ) -> Template:
        """The form again with the reason; the e-mail address is kept, the code and the
        passwords are typed again (they are never echoed into a page)."""
        return page(
            request,
            "portal_join.html",
            None,
            status_code=status,
            title=_("Join with an invitation code"),
            error=error,
            email=data.email,
        )
