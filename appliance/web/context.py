"""Request ids and the access log.

Litestar runs middleware only for matched routes, so unmatched requests (404/405) are logged
by the error handlers instead (see errors.py); both use `access_log` and `new_request_id`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import anyio
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.logs import request_id_var
from appliance.web.security import SECURITY_HEADERS

REQUEST_ID_HEADER = "x-request-id"
DB_SESSION_KEY = "appliance.db_session"  # in scope["state"]; closed after the response
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

access_logger = logging.getLogger("appliance.access")


def new_request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is safe to log, else a fresh one."""
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


def access_log(
    scope: Scope, status: int, started: float, route: str | None, request_id: str
) -> None:
    access_logger.info(
        "request",
        extra={
            "request_id": request_id,
            "method": scope.get("method", ""),
            "route": route or "<unmatched>",  # the template, never the raw path or query
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


def _close(session: Any) -> None:
    """Roll back whatever the request left open and return the connection to the pool."""
    try:
        session.close()
    except Exception as exc:  # a connection the database dropped: the pool discards it
        logging.getLogger("appliance.web").warning(
            "closing the request's database session failed", extra={"error": type(exc).__name__}
        )


class RequestContextMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = new_request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = MutableScopeHeaders.from_message(message)
                headers[REQUEST_ID_HEADER] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        try:
            await next_app(scope, receive, send_with_id)
        finally:
            access_log(scope, status["code"], started, scope.get("path_template"), request_id)
            request_id_var.reset(token)
            session = scope.get("state", {}).pop(DB_SESSION_KEY, None)
            if session is not None:
                await anyio.to_thread.run_sync(_close, session)
