"""Portal: the patient's own second factor, optional. They may turn on a TOTP authenticator
(the same enrolment as the console's, appliance.auth.service) and turn it off again with a
current code; once on, the portal's sign-in asks for a code (appliance.auth.service.sign_in).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.audit.service import Actor, AuditEntry, record
from appliance.auth import service, totp
from appliance.auth.guards import Principal
from appliance.auth.pages import key_context
from appliance.clinic.models import User
from appliance.errors import Invalid, NotFound
from appliance.portal.pages import PortalPages, provide_patient
from appliance.web.i18n import _, lazy_gettext
from appliance.web.pages import PageController, page, request_settings, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
NOTICES = {
    "on": lazy_gettext("Your authenticator is on: signing in now also asks for its code."),
    "off": lazy_gettext("Your authenticator is off: signing in asks for your password only."),
}


class CodeForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    code: str = Field(default="", max_length=10)
    fresh: bool = False  # "Start over with a new key": the pending one is dropped


def disable_totp(session: Session, server_secret: bytes, actor: Actor, code: str) -> None:
    """Turn the second factor off, proven with a current code (a stolen session alone cannot
    remove it). Audited; the caller commits."""
    user = session.get(User, actor.user_id) if actor.user_id else None
    if user is None:
        raise NotFound("no such user")
    if not user.totp_enabled or user.totp_secret_enc is None:
        return
    secret = totp.open_secret(server_secret, user.id, user.totp_secret_enc)
    step = totp.accept(secret, code.strip(), user.totp_last_step)
    if step is None:
        record(session, actor, AuditEntry("auth.totp.disable", "failure", "user", str(user.id)))
        session.commit()
        raise Invalid("that code is not valid; check the authenticator's clock and try again")
    user.totp_enabled, user.totp_secret_enc, user.totp_last_step = False, None, step
    session.add(user)
    record(session, actor, AuditEntry("auth.totp.disable", "success", "user", str(user.id)))


class SecurityPages(PageController):
    path = "/portal/security"
    exception_handlers = PortalPages.exception_handlers
    dependencies = {"principal": Provide(provide_patient)}

    @get("/", sync_to_thread=True)
    def show(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        welcome: FromQuery[bool] = False,
        done: FromQuery[str | None] = None,
    ) -> Template:
        shown = service.pending_totp(
            db_session,
            state.server_secret,
            principal.actor(),
            issuer=request_settings(request).clinic.name,
        )
        return self._render(
            request,
            principal,
            db_session,
            welcome=welcome,
            notice=NOTICES.get(done or ""),
            **(key_context(*shown) if shown else {}),
        )

    @post("/totp", sync_to_thread=True)
    def begin(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[CodeForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        """The key for the authenticator app: the one shown before and not confirmed yet (a
        key typed into a phone keeps working after a reload), or a new one when none is
        pending or the patient asked for a new one; on once a first code matches. Not while
        one is on: starting over would switch it off without a code."""
        shown = service.key_to_show(
            db_session,
            state.server_secret,
            principal.actor(),
            request_settings(request).clinic.name,
            fresh=data.fresh,
        )
        return self._render(request, principal, db_session, **key_context(*shown))

    @post("/totp/confirm", sync_to_thread=True)
    def confirm(
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
            # The pending key is shown again, so the patient can check what they typed in.
            shown = service.pending_totp(
                db_session,
                state.server_secret,
                principal.actor(),
                issuer=request_settings(request).clinic.name,
            )
            return self._render(
                request,
                principal,
                db_session,
                status_code=422,
                error=_(str(refused)),
                **(key_context(*shown) if shown else {}),
            )
        return see_other("/portal/security?done=on")

    @post("/totp/off", sync_to_thread=True)
    def turn_off(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[CodeForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        try:
            disable_totp(db_session, state.server_secret, principal.actor(), data.code)
        except Invalid as refused:
            return self._render(
                request, principal, db_session, status_code=422, error=_(str(refused))
            )
        db_session.commit()
        return see_other("/portal/security?done=off")

    def _render(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: Session,
        **context: Any,
    ) -> Template:
        user = db_session.get(User, principal.user_id)
        return page(
            request,
            "portal_security.html",
            principal,
            title=_("Sign-in security"),
            totp_on=bool(user and user.totp_enabled),
            **context,
        )
