"""Every error as RFC 9457 (formerly 7807) problem+json, including 404, 405 and validation.

Bodies say what was wrong with the request, never internals: a 500 names only its request id,
which finds the (PHI-free) log line.
"""

from __future__ import annotations

import errno
import logging
import time
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError, OperationalError

from appliance.errors import DomainError, TooManyRequests
from appliance.logs import request_id_var
from appliance.observability.errors import record_request_error
from appliance.pgserver import DatabaseUnavailable
from appliance.web.context import REQUEST_ID_HEADER, access_log, new_request_id
from appliance.web.security import SECURITY_HEADERS

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger("appliance.web")


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str | None = None,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    request_id = request_id_var.get()
    if request_id is None:
        # Unmatched route: the request-context middleware never ran, so log the access here.
        request_id = new_request_id(request.scope)
        access_log(request.scope, status, time.perf_counter(), None, request_id)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "instance": request.url.path if status != 404 else None,
        "request_id": request_id,
    }
    if detail:
        body["detail"] = detail
    body.update(extra or {})
    return Response(
        {k: v for k, v in body.items() if v is not None},
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={**SECURITY_HEADERS, **(headers or {}), REQUEST_ID_HEADER: request_id},
    )


def http_exception_handler(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        extra["errors"] = exc.extra
        status = 422 if request.method != "GET" else 400
    else:
        status = exc.status_code
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    return problem_response(request, status, detail, extra=extra, headers=exc.headers)


def domain_error_handler(
    request: Request[Any, Any, Any], exc: DomainError
) -> Response[dict[str, Any]]:
    wait = getattr(exc, "retry_after", None)  # rate limits (429), a busy model service (503)
    if isinstance(wait, int):
        status = 429 if isinstance(exc, TooManyRequests) else exc.status_code
        return problem_response(
            request,
            status,
            str(exc),
            extra={"retry_after": wait},
            headers={"Retry-After": str(wait)},
        )
    return problem_response(request, exc.status_code, str(exc) or exc.title)


def internal_error_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    logger.error("unhandled error", exc_info=exc)
    record_request_error(request, exc)  # for the console's Errors page (PHI-free)
    return problem_response(request, 500, "An internal error occurred; quote the request id.")


def database_unavailable_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    """The database went away mid-request (restart, failover, too many connections). The
    request's transaction was rolled back, so nothing half-done stays; the client retries."""
    lost = isinstance(exc, OperationalError | DatabaseUnavailable) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not lost:  # a constraint or a bug, not an outage
        return internal_error_handler(request, exc)
    logger.warning("database unavailable", extra={"error": type(exc).__name__})
    return problem_response(
        request,
        503,
        "The database is unavailable; nothing was changed. Try again shortly.",
        headers={"Retry-After": "5"},
    )


def storage_full_handler(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[dict[str, Any]]:
    """The disk ran out of space (ENOSPC, a quota) somewhere a write was not expected to fail:
    507, which the client may retry once space is freed, instead of a 500 that reads as a bug.
    Anything else from the operating system is still a 500."""
    if not (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return internal_error_handler(request, exc)
    logger.warning("disk full", extra={"error": type(exc).__name__})
    return problem_response(request, 507, "The disk is full; nothing was stored. Try again later.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    OSError: storage_full_handler,
    DBAPIError: database_unavailable_handler,
    DatabaseUnavailable: database_unavailable_handler,
    HTTPException: http_exception_handler,
    DomainError: domain_error_handler,
    Exception: internal_error_handler,
}
