"""The server-rendered console: templates, static files, and who is signed in.

Pages work without JavaScript: plain forms, POST-redirect-GET, a CSRF token in a hidden field
(checked by the same code as the API's header). A missing or ended session redirects to the
sign-in page; an admin without a second factor is sent to enrol one first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import anyio
from litestar import Controller, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ExceptionHandlersMap
from sqlmodel import Session

from appliance.auth.guards import SAFE_METHODS, EnrolmentRequired, Principal, session_principal
from appliance.chat import alerts
from appliance.clinic import access
from appliance.clinic.models import Role
from appliance.clinic.preferences import effective_settings
from appliance.errors import DomainError, TooManyRequests
from appliance.reports import flags
from appliance.settings import Settings
from appliance.web import i18n
from appliance.web.i18n import _
from appliance.web.security import SECURITY_HEADERS

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
OPEN_ALERTS_KEY = "appliance.open_alerts"  # in scope["state"]: the nav badge's count
OPEN_FLAGS_KEY = "appliance.open_flags"  # in scope["state"]: open risk flags, for therapists
SETTINGS_KEY = "appliance.settings"  # in scope["state"]: this request's effective settings


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_install_i18n
    )


def _install_i18n(engine: JinjaTemplateEngine) -> None:
    """Every user-visible string in a template goes through `_()` / `{% trans %}`; the
    callables read the request's language when the template renders (see `i18n`)."""
    engine.engine.add_extension("jinja2.ext.i18n")
    engine.engine.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=i18n.gettext,
        ngettext=i18n.ngettext,
        pgettext=i18n.pgettext,
        npgettext=i18n.npgettext,
        newstyle=True,
    )
    engine.engine.globals.update(i18n.template_globals())


def static_files() -> Any:
    return create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)


class SignInRequired(Exception):
    """No session (or it ended): the page handler sends the browser to the sign-in form."""


async def provide_page_principal(
    request: Request[Any, Any, Any], db_session: NamedDependency[Session], state: State
) -> Principal:
    sent = ""
    if request.method not in SAFE_METHODS:
        form = await request.form()  # cached: the handler's form data reads the same parse
        value = form.get("csrf_token", "")
        sent = value if isinstance(value, str) else ""
    try:
        return await anyio.to_thread.run_sync(_signed_in, request, db_session, state, sent)
    except NotAuthorizedException:
        raise SignInRequired from None


def _signed_in(
    request: Request[Any, Any, Any], db_session: Session, state: State, csrf_sent: str
) -> Principal:
    """The principal, and the counts of open crisis alerts and risk flags for the navigation's
    badges. They are taken here, in the worker thread that already talks to the database, so that
    `page()` can show it from async handlers too without blocking the event loop."""
    principal = session_principal(request, db_session, state, csrf_sent)
    if not principal.needs_totp_enrolment:  # open_count is 0, without a query, for non-staff
        count = alerts.open_count(db_session, principal)
        request.scope.setdefault("state", {})[OPEN_ALERTS_KEY] = count
    if principal.role == Role.therapist and not principal.needs_totp_enrolment:
        request.scope["state"][OPEN_FLAGS_KEY] = flags.open_flag_count(
            db_session, access.visible_patient_ids(principal)
        )
    request.scope.setdefault("state", {})[SETTINGS_KEY] = effective_settings(
        state.settings, db_session
    )
    return principal


def request_settings(request: Request[Any, Any, Any]) -> Settings:
    """The settings this request acts on: the file's with the console's clinic preferences
    (appliance.clinic.preferences), read once per request and never kept longer, so a change
    shows on the next page without a restart. Signed-in pages read them in `_signed_in`'s
    thread; pages without a principal (sign-in, join, the front door) read them here, one
    small query, so their handlers run in a thread (`sync_to_thread=True`), never on the
    event loop."""
    found: Settings | None = request.scope.get("state", {}).get(SETTINGS_KEY)
    if found is None:
        with request.app.state.database.session() as db:
            found = effective_settings(request.app.state.settings, db)
        request.scope.setdefault("state", {})[SETTINGS_KEY] = found
    return found


def page(
    request: Request[Any, Any, Any],
    name: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Template:
    settings = request_settings(request)
    return Template(
        template_name=name,
        context={
            "clinic_name": settings.clinic.name,
            "principal": principal,
            "csrf_token": principal.csrf_token if principal else "",
            # Counted by the page principal dependency (see `_signed_in`); 0 when not staff.
            "open_alerts": request.scope.get("state", {}).get(OPEN_ALERTS_KEY, 0),
            "open_flags": request.scope.get("state", {}).get(OPEN_FLAGS_KEY, 0),
            **context,
            # Every page shows times in the clinic's zone as it is now (the console may have
            # changed it since the process started), whatever `zone` a caller passed.
            "zone": ZoneInfo(settings.clinic.timezone),
        },
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )


def see_other(path: str) -> Redirect:
    """POST-redirect-GET: the browser's back and reload buttons never re-submit a form."""
    return Redirect(path=path, status_code=303)


def _to_sign_in(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return see_other("/console/login")


def _to_enrolment(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return see_other("/console/totp")


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors on pages are pages too (the API's are problem+json)."""
    status = getattr(exc, "status_code", 500)
    if isinstance(exc, DomainError | HTTPException):
        # A service's message is translated when the catalog has it (empty msgid: the header).
        detail = str(getattr(exc, "detail", "") or exc)
        message = _(detail) if detail else _("That did not work.")
    else:
        message = _("Something went wrong; the clinic's IT can find it in the log.")
    headers = dict(SECURITY_HEADERS)
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    portal = request.url.path.startswith("/portal")
    return Template(
        template_name="portal_error.html" if portal else "error.html",
        context={
            "message": message[:1].upper() + message[1:],
            "back": _back_link(request, "/portal" if portal else "/console"),
            # No query here (the database may be what failed): this request's settings if
            # they were read already, else the file's.
            "clinic_name": request.scope.get("state", {})
            .get(SETTINGS_KEY, request.app.state.settings)
            .clinic.name,
        },
        status_code=status,
        headers=headers,
    )


def _back_link(request: Request[Any, Any, Any], home: str) -> str:
    """The page the user came from when it is one of ours (browsers send the Referer only to
    this same origin, see security.py), else `home`: an error is never a dead end."""
    referer = urlsplit(request.headers.get("referer", ""))
    here = request.url
    if (referer.scheme, referer.netloc) != (here.scheme, here.netloc):
        return home
    if not referer.path.startswith(home) or referer.path == here.path:
        return home
    return referer.path + (f"?{referer.query}" if referer.query else "")


PAGE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    SignInRequired: _to_sign_in,
    EnrolmentRequired: _to_enrolment,
    DomainError: _error_page,
    HTTPException: _error_page,
}


class PageController(Controller):
    """Base of every console page controller: signed-in principal from the cookie (CSRF from
    the form), errors as pages, sign-in and enrolment as redirects, not in the OpenAPI."""

    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS
    dependencies = {"principal": Provide(provide_page_principal)}
