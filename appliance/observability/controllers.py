"""`GET /metrics` and the middleware that times every matched request.

`/metrics` needs no sign-in (Prometheus scrapes without cookies) and changes nothing, so no
CSRF token either; instead it answers only the box itself and `[metrics] allow`. Everyone
else gets the same 404 as a path that does not exist, so the endpoint cannot be discovered.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.exceptions import NotFoundException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from appliance.observability import access
from appliance.observability.metrics import CONTENT_TYPE, AppMetrics


class MetricsController(Controller):
    path = "/metrics"
    include_in_schema = False

    @get("/", sync_to_thread=True)
    def metrics(self, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        metrics: AppMetrics = state.metrics
        client = request.client.host if request.client else ""
        if not metrics.enabled or not access.may_scrape(client, request.headers, metrics.allow):
            raise NotFoundException()
        return Response(metrics.render(state.database), media_type=CONTENT_TYPE)


class RequestMetricsMiddleware(ASGIMiddleware):
    """Latency by method, route template and status class. Litestar runs middleware for
    matched routes only, so a scanner's 404s add no label values."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: AppMetrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500  # an exception that escaped every handler

        async def observe_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, observe_status)
        finally:
            route = scope.get("path_template") or "<unmatched>"
            method = str(scope.get("method", ""))
            self.metrics.observe_request(method, route, status, time.perf_counter() - started)


def first_token(state: State, started: float) -> None:
    """For the chat stream: the first verified words are about to be sent."""
    metrics: AppMetrics | None = state.get("metrics")
    if metrics is not None:
        metrics.observe_first_token(started)
