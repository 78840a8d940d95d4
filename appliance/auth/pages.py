"""Console sign-in, sign-out and second-factor enrolment, as plain HTML forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.audit.service import AuditEntry, record
from appliance.auth import service, sessions
from appliance.auth.controllers import session_cookie, sign_in_request
from appliance.auth.guards import Principal
from appliance.auth.service import SignInRefused
from appliance.errors import Invalid, TooManyRequests
from appliance.web.pages import PageController, page, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


class LoginForm(SQLModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)
    totp_code: str = Field(default="", max_length=10)


class CodeForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    code: str = Field(default="", max_length=10)


class SignInPages(PageController):
    path = "/console"

    @get("/")
    async def home(self) -> Response[Any]:
        return see_other("/console/patients")

    @get("/login")
    async def login_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "login.html", None)

    @post("/login", sync_to_thread=True)
    def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, FORM],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        return sign_in_from_form(
            request,
            db_session,
            state,
            data,
            "login.html",
            lambda signed: "/console/totp" if signed.needs_totp_enrolment else "/console/patients",
        )

    @post("/logout", sync_to_thread=True, opt={"allow_unenrolled": True})
    def logout(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        return sign_out(request, principal, db_session, state, then="/console/login")

    @get("/totp", opt={"allow_unenrolled": True})
    async def totp_start(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> Template:
        return page(request, "totp.html", principal)

    @post("/totp", sync_to_thread=True, opt={"allow_unenrolled": True})
    def totp_setup(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        """A new secret, shown once as text for the authenticator app."""
        secret, uri = service.begin_totp(
            db_session, state.server_secret, principal.actor(), issuer=state.settings.clinic.name
        )
        return page(request, "totp.html", principal, secret=secret, uri=uri)

    @post("/totp/confirm", sync_to_thread=True, opt={"allow_unenrolled": True})
    def totp_confirm(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[CodeForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        try:
            service.confirm_totp(
                db_session,
                state.server_secret,
                principal.actor(),
                data.code.strip(),
                principal.token_hash,
            )
        except Invalid as refused:
            return page(request, "totp.html", principal, status_code=422, error=str(refused))
        return see_other("/console/patients")


def sign_out(
    request: Request[Any, Any, Any],
    principal: Principal,
    db_session: Session,
    state: State,
    *,
    then: str,
) -> Response[Any]:
    """End this browser's session (audited), forget its cookie, go to the sign-in page `then`."""
    cookie = sessions.cookie_name(state.settings)
    sessions.revoke(db_session, request.cookies.get(cookie, ""))
    record(db_session, principal.actor(), AuditEntry("auth.logout", details={"ended": 1}))
    db_session.commit()
    response = see_other(then)
    response.delete_cookie(cookie, path="/")
    return response


def sign_in_from_form(
    request: Request[Any, Any, Any],
    db_session: Session,
    state: State,
    data: LoginForm,
    template: str,
    then: Callable[[service.SignIn], str],
    **context: Any,
) -> Response[Any]:
    """A sign-in form's answer: on to `then(result)` with the session cookie, or the form
    again with the reason (and the e-mail address kept, so only the password is retyped)."""
    try:
        result = sign_in_request(
            request, db_session, state, data.email, data.password, data.totp_code or None
        )
    except (SignInRefused, TooManyRequests) as refused:
        return page(
            request,
            template,
            None,
            status_code=refused.status_code,
            error=str(refused),
            email=data.email,
            **context,
        )
    response = see_other(then(result))
    response.set_cookie(session_cookie(state.settings, result.session.token))
    return response
