"""Console sign-in, sign-out and second-factor enrolment, as plain HTML forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.audit.service import AuditEntry, record
from appliance.auth import service, sessions, totp
from appliance.auth.controllers import session_cookie, sign_in_request
from appliance.auth.guards import Principal
from appliance.auth.service import SignInRefused
from appliance.clinic.models import Role, User
from appliance.errors import Invalid, TooManyRequests
from appliance.web.i18n import N_, _, supported
from appliance.web.language import language_cookie
from appliance.web.pages import PageController, page, request_settings, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


class LoginForm(SQLModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)
    totp_code: str = Field(default="", max_length=10)


class CodeForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    code: str = Field(default="", max_length=10)


class KeyForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    fresh: bool = False  # "Start over with a new key": the pending one is dropped


# Marked here, translated when shown (base.html); the patients page shows it after ?done=totp.
TOTP_ON = N_("Your authenticator is on: from now on, signing in asks for its code.")


class SignInPages(PageController):
    path = "/console"

    @get("/")
    async def home(self, principal: NamedDependency[Principal]) -> Response[Any]:
        """Each role's first page (the header's clinic name links here): auditors read the
        audit log and may not list patients; everyone else starts at the patients."""
        return see_other(
            "/console/audit" if principal.role == Role.auditor else "/console/patients"
        )

    @get("/login", sync_to_thread=True)
    def login_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "login.html", None, title=_("Sign in"))

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
            lambda signed: (
                "/console/totp"
                if signed.needs_totp_enrolment
                else "/console/audit"  # auditors read the audit log and nothing else
                if signed.user.role == Role.auditor
                else "/console/patients"
            ),
            title=_("Sign in"),
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

    @get("/totp", sync_to_thread=True, opt={"allow_unenrolled": True})
    def totp_start(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        """The key not confirmed yet, if one was shown before (a reload must not replace a key
        already typed into a phone), else the button that makes one."""
        shown = service.pending_totp(
            db_session,
            state.server_secret,
            principal.actor(),
            issuer=request_settings(request).clinic.name,
        )
        return self._totp_page(
            request,
            principal,
            totp_on=service.totp_is_on(db_session, principal.actor()),
            notice=TOTP_ON if done == "on" else None,  # base.html translates it
            **(key_context(*shown) if shown else {}),
        )

    @post("/totp", sync_to_thread=True, opt={"allow_unenrolled": True})
    def totp_setup(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[KeyForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        """The key to add to the app: the pending one again, or a new one when none is
        pending or the user asked for a new one. Not while one is on: replacing it would
        switch the second factor off with a session alone."""
        shown = service.key_to_show(
            db_session,
            state.server_secret,
            principal.actor(),
            request_settings(request).clinic.name,
            fresh=data.fresh,
        )
        return self._totp_page(request, principal, **key_context(*shown))

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
            # The pending key again, so they can check what they typed into the app.
            shown = service.pending_totp(
                db_session,
                state.server_secret,
                principal.actor(),
                issuer=request_settings(request).clinic.name,
            )
            return self._totp_page(
                request,
                principal,
                status_code=422,
                error=_(str(refused)),
                **(key_context(*shown) if shown else {}),
            )
        # Auditors start at the audit log, which has no notice of its own: they see it here.
        if principal.role == Role.auditor:
            return see_other("/console/totp?done=on")
        return see_other("/console/patients?done=totp")

    def _totp_page(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> Template:
        return page(
            request,
            "totp.html",
            principal,
            status_code=status_code,
            title=_("Set up your authenticator"),
            **context,
        )


def key_context(secret: str, uri: str) -> dict[str, Any]:
    """What a page shows of a key for the authenticator app: the QR code to scan, the key in
    groups of four to type in, and the otpauth:// link (shared with the portal's page)."""
    return {
        "secret": secret,
        "grouped": totp.grouped(secret),
        "uri": uri,
        "qr": totp.qr_data_uri(uri),
    }


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
        shown = page(
            request,
            template,
            None,
            status_code=refused.status_code,
            error=_(str(refused)),
            email=data.email,
            **context,
        )
        if isinstance(refused, TooManyRequests):  # the lock-out says when to try again
            shown.headers["Retry-After"] = str(refused.retry_after)
        return shown
    response = see_other(then(result))
    response.set_cookie(session_cookie(state.settings, result.session.token))
    account = db_session.get(User, result.user.id)
    if account is not None and supported(account.locale):  # their saved language, here too
        response.set_cookie(language_cookie(state.settings, account.locale or ""))
    return response
