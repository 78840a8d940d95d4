"""Sign-in endpoints. Thin: the work is in appliance.auth.service."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT
from sqlmodel import Session

from appliance.audit.service import AuditEntry, record
from appliance.auth import service, sessions
from appliance.auth.guards import Principal, client_ip, provide_principal
from appliance.auth.schemas import LoginRequest, SessionPublic, TotpConfirm, TotpSetup
from appliance.auth.throttle import enforce
from appliance.clinic.models import User
from appliance.clinic.service import user_public
from appliance.errors import NotFound
from appliance.settings import Settings

LOGIN_RATE = (60, 60)  # per address: 60 attempts a minute, on top of the failure throttle


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @post("/login", status_code=HTTP_200_OK, sync_to_thread=True)
    def login(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LoginRequest],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[SessionPublic]:
        """Sign in with e-mail, password and (when enrolled) a one-time code; sets the cookie."""
        result = sign_in_request(
            request, db_session, state, data.email, data.password, data.totp_code
        )
        body = SessionPublic(
            user=result.user,
            csrf_token=result.session.csrf_token,
            needs_totp_enrolment=result.needs_totp_enrolment,
        )
        return Response(body, cookies=[session_cookie(state.settings, result.session.token)])

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        sync_to_thread=True,
        opt={"allow_unenrolled": True},
    )
    def logout(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        everywhere: FromQuery[bool] = False,
    ) -> Response[None]:
        """End this session (or, with `everywhere=true`, all of this user's sessions)."""
        token = request.cookies.get(sessions.cookie_name(state.settings), "")
        ended = sessions.revoke_all(db_session, principal.user_id) if everywhere else 1
        if not everywhere:
            sessions.revoke(db_session, token)
        record(db_session, principal.actor(), AuditEntry("auth.logout", details={"ended": ended}))
        db_session.commit()
        response: Response[None] = Response(None, status_code=HTTP_204_NO_CONTENT)
        response.delete_cookie(sessions.cookie_name(state.settings), path="/")
        return response

    @get("/me", sync_to_thread=True, opt={"allow_unenrolled": True})
    def me(
        self, principal: NamedDependency[Principal], db_session: NamedDependency[Session]
    ) -> SessionPublic:
        user = db_session.get(User, principal.user_id)
        if user is None:
            raise NotFound("no such user")
        return SessionPublic(
            user=user_public(user),
            csrf_token=principal.csrf_token,
            needs_totp_enrolment=principal.needs_totp_enrolment,
        )

    @post(
        "/totp/setup", status_code=HTTP_200_OK, sync_to_thread=True, opt={"allow_unenrolled": True}
    )
    def totp_setup(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> TotpSetup:
        """Start (or restart) TOTP enrolment: returns the secret and an otpauth:// URI."""
        secret, uri = service.begin_totp(
            db_session, state.server_secret, principal.actor(), issuer=state.settings.clinic.name
        )
        return TotpSetup(secret=secret, uri=uri)

    @post(
        "/totp/confirm",
        status_code=HTTP_204_NO_CONTENT,
        sync_to_thread=True,
        opt={"allow_unenrolled": True},
    )
    def totp_confirm(
        self,
        data: JSONBody[TotpConfirm],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> None:
        """Turn TOTP on with a first valid code; sign-ins then need a code each time."""
        service.confirm_totp(
            db_session, state.server_secret, principal.actor(), data.code, principal.token_hash
        )


def session_cookie(settings: Settings, token: str) -> Cookie:
    """HttpOnly, SameSite=Lax, Secure in production; lives as long as the session may."""
    return Cookie(
        key=sessions.cookie_name(settings),
        value=token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.web.cookie_secure,
        max_age=settings.auth.session_absolute_hours * 3600,
    )


def refuse_cross_site(request: Request[Any, Any, Any]) -> None:
    """Login CSRF: a sign-in must come from a page of this appliance. Browsers that send
    Sec-Fetch-Site are judged by it; older ones by Origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        if site not in ("same-origin", "none"):  # none: typed into the address bar
            raise PermissionDeniedException("cross-site sign-in refused")
        return
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise PermissionDeniedException("cross-site sign-in refused")


def sign_in_request(
    request: Request[Any, Any, Any],
    db_session: Session,
    state: State,
    email: str,
    password: str,
    totp_code: str | None,
) -> service.SignIn:
    """A sign-in from this request (API, console or portal form): only from the appliance's own
    pages, throttled per address, replacing the browser's previous session."""
    refuse_cross_site(request)
    ip = client_ip(request)
    enforce(db_session, f"login-ip:{ip}", *LOGIN_RATE)
    return service.sign_in(
        db_session,
        state.settings,
        state.server_secret,
        email=email,
        password=password,
        totp_code=totp_code,
        ip=ip,
        user_agent=request.headers.get("user-agent"),
        replaces=request.cookies.get(sessions.cookie_name(state.settings)),
    )
