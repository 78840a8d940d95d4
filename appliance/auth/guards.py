"""Who is asking: the principal behind a request (cookie session or API key), with CSRF and
second-factor enrolment enforced on the way in. Object checks live with each domain, in SQL."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from sqlmodel import Session

from appliance.audit.service import Actor, cli_actor
from appliance.auth import apikeys, sessions
from appliance.clinic.models import Role, User
from appliance.clinic.service import find_user
from appliance.errors import NotFound

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: Role
    via: Literal["session", "api_key", "cli"]
    ip: str
    user_agent: str | None
    token_hash: str | None = None
    csrf_token: str | None = None
    needs_totp_enrolment: bool = False

    def actor(self) -> Actor:
        return Actor(
            role=self.role.value, user_id=self.user_id, ip=self.ip, user_agent=self.user_agent
        )

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise PermissionDeniedException("your role may not do this")


def client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


class EnrolmentRequired(PermissionDeniedException):
    """Signed in, but a second factor must be enrolled before anything else."""


def provide_principal(
    request: Request[Any, Any, Any], db_session: NamedDependency[Session], state: State
) -> Principal:
    """API requests: an API key, or the session cookie with the CSRF token in a header."""
    presented = request.headers.get("x-api-key")
    if presented is not None:
        found = apikeys.authenticate(db_session, presented)
        if found is None:
            raise NotAuthorizedException("invalid or revoked API key")
        key, user = found
        return Principal(
            user.id,
            Role(key.role),
            "api_key",
            client_ip(request),
            request.headers.get("user-agent"),
        )
    return session_principal(request, db_session, state, request.headers.get(CSRF_HEADER, ""))


def cross_site(request: Request[Any, Any, Any]) -> bool:
    """A browser says the request comes from another site (Sec-Fetch-Site, else an Origin
    naming another host). Defence in depth for cookie sessions beside the CSRF token;
    requests without either header (scripts, old browsers) are judged by the token alone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return bool(origin) and urlsplit(origin or "").netloc != request.headers.get("host", "")


def refuse_cross_site_writes(request: Request[Any, Any, Any]) -> None:
    """The app's `before_request` hook: an unsafe request a browser marks as cross-site is
    refused before its body is read, on every route, when it carries a session cookie (the
    sign-in forms refuse cross-site posts themselves, with their own message; API keys, sent
    by integrations rather than browsers, are exempt)."""
    if (
        request.method not in SAFE_METHODS
        and "x-api-key" not in request.headers
        and (sessions.SECURE_COOKIE in request.cookies or sessions.PLAIN_COOKIE in request.cookies)
        and cross_site(request)
    ):
        raise PermissionDeniedException("cross-site request refused")


def session_principal(
    request: Request[Any, Any, Any], db_session: Session, state: State, csrf_sent: str
) -> Principal:
    """The signed-in user behind the session cookie. Unsafe methods must present the
    session's CSRF token (`csrf_sent`: from the header for the API, a form field for pages)."""
    token = request.cookies.get(sessions.cookie_name(state.settings))
    if not token:
        raise NotAuthorizedException("sign in first")
    row = sessions.resolve(db_session, state.settings, token)
    if row is None:
        raise NotAuthorizedException("your session has ended; sign in again")
    account = db_session.get(User, row.user_id)
    if account is None or not account.is_active:
        raise NotAuthorizedException("your session has ended; sign in again")
    if request.method not in SAFE_METHODS and not hmac.compare_digest(
        csrf_sent.encode(), row.csrf_token.encode()
    ):
        raise PermissionDeniedException("missing or invalid CSRF token")
    if row.needs_totp_enrolment and not request.route_handler.opt.get("allow_unenrolled"):
        raise EnrolmentRequired(
            "enrol a second factor first (POST /api/v1/auth/totp/setup, then /confirm)"
        )
    return Principal(
        account.id,
        Role(account.role),
        "session",
        client_ip(request),
        request.headers.get("user-agent"),
        row.token_hash,
        row.csrf_token,
        row.needs_totp_enrolment,
    )


def cli_principal(session: Session, email: str) -> Principal:
    """The staff member named by a CLI command's `--by`: same checks as their web sign-in
    would get, recorded as done at the server's shell."""
    user = find_user(session, email)
    if user is None or not user.is_active:
        raise NotFound("no active user with this e-mail address")
    return Principal(user.id, Role(user.role), "cli", "local", cli_actor().user_agent)
