"""Which language a request is answered in, and the switcher that changes it.

`LocaleMiddleware` sets the language for the whole request (handlers, templates, error
pages) before anything else runs. `POST /lang` is the switcher in every page's header: it
works without JavaScript, remembers the choice in a cookie and, for a signed-in person, in
their account (so it follows them to another device at the next sign-in).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, post
from litestar.datastructures import Cookie, MutableScopeHeaders, State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType, ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.params import Body
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlmodel import Field, Session, SQLModel

from appliance.auth.controllers import refuse_cross_site
from appliance.auth.guards import session_principal
from appliance.clinic.models import User
from appliance.settings import Settings
from appliance.web import i18n
from appliance.web.pages import PAGE_EXCEPTION_HANDLERS, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
FALLBACK_NEXT = "/console"


class LocaleMiddleware(ASGIMiddleware):
    """The request's language from the `lang` cookie or Accept-Language (see
    `i18n.negotiate`), for everything the request runs; said back as Content-Language."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        cookie, accept = None, None
        for key, value in scope.get("headers", ()):
            if key == b"cookie" and cookie is None:
                cookie = _cookie_value(value.decode("latin-1"), i18n.COOKIE)
            elif key == b"accept-language":
                accept = value.decode("latin-1")
        lang = i18n.negotiate(cookie, accept)

        async def send_with_language(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["content-language"] = lang
            await send(message)

        token = i18n.set_locale(lang)
        try:
            await next_app(scope, receive, send_with_language)
        finally:
            i18n.reset_locale(token)


def _cookie_value(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _sep, value = part.strip().partition("=")
        if key == name:
            return value.strip().strip('"')
    return None


def language_cookie(settings: Settings, lang: str) -> Cookie:
    """Not a secret (the page says its language): readable by no script all the same."""
    return Cookie(
        key=i18n.COOKIE,
        value=lang,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.web.cookie_secure,
        max_age=i18n.COOKIE_MAX_AGE,
    )


def local_path(candidate: str) -> str | None:
    """`candidate` if it is a path on this site ("/portal?fresh=true"), else None: never a
    scheme, a host ("//evil.example"), a backslash (which browsers read as a slash) or a
    control character, so the switcher cannot be used to send someone elsewhere."""
    if not candidate.startswith("/") or candidate.startswith("//"):
        return None
    if "\\" in candidate or any(ord(char) < 0x20 or ord(char) == 0x7F for char in candidate):
        return None
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return None
    return candidate


class LanguageForm(SQLModel):
    lang: str = Field(default="", max_length=16)
    next: str = Field(default="", max_length=2000)
    csrf_token: str = Field(default="", max_length=128)


class LanguagePages(Controller):
    path = "/lang"
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    @post("/", sync_to_thread=True, opt={"allow_unenrolled": True})
    def choose(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LanguageForm, FORM],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """Back to the same page in the chosen language. Only from this appliance's own pages
        (like sign-in); the account remembers it only when the form carries its CSRF token."""
        refuse_cross_site(request)
        lang = i18n.supported(data.lang)
        if lang is None:
            raise HTTPException(status_code=422, detail=i18n._("That language is not available."))
        if data.csrf_token:
            _remember(request, db_session, state, data.csrf_token, lang)
        response = see_other(local_path(data.next) or _came_from(request) or FALLBACK_NEXT)
        response.set_cookie(language_cookie(state.settings, lang))
        return response


def _came_from(request: Request[Any, Any, Any]) -> str | None:
    """The page the form was on, from a same-origin Referer (path and query only)."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.headers.get("host", "") or not referer.path:
        return None
    return local_path(referer.path + (f"?{referer.query}" if referer.query else ""))


def _remember(
    request: Request[Any, Any, Any], db_session: Session, state: State, csrf: str, lang: str
) -> None:
    """Save the choice on the signed-in account; a stale session or token just skips this."""
    try:
        principal = session_principal(request, db_session, state, csrf)
    except HTTPException:
        return
    user = db_session.get(User, principal.user_id)
    if user is not None and user.locale != lang:
        user.locale = lang
        db_session.add(user)
        db_session.commit()
