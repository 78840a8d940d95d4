"""Health endpoints for systemd, load balancers and clinic IT. No patient data, ever."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import PermissionDeniedException
from litestar.params import QueryParameter

from appliance import __version__
from appliance.db import Database
from appliance.doctor import check_database, check_disk, check_gpu, check_keys, check_models
from appliance.settings import Settings
from appliance.web.errors import problem_response


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/", summary="Service is up")
    async def health(self) -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @get("/live", summary="Process is alive (no dependencies checked)")
    async def live(self) -> dict[str, str]:
        return {"status": "alive"}

    @get("/ready", summary="Ready to serve: database reachable and migrated", sync_to_thread=True)
    def ready(self, request: Request[Any, Any, Any], state: State) -> Response[dict[str, Any]]:
        database: Database = state.database
        checks = check_database(database)
        failed = [c for c in checks if c.status == "fail"]
        if failed:
            return problem_response(
                request,
                503,
                "; ".join(f"{c.name}: {c.detail}" for c in failed),
                headers={"Retry-After": "5"},
            )
        return Response({"status": "ready", "checks": [c.as_dict() for c in checks]})

    @get("/detailed", summary="Everything doctor checks, fast (loopback only)", sync_to_thread=True)
    def detailed(
        self,
        request: Request[Any, Any, Any],
        state: State,
        full: Annotated[bool, QueryParameter(description="Re-hash every model file")] = False,
    ) -> dict[str, Any]:
        """`full=true` re-hashes every model file (seconds); the default checks sizes."""
        # Paths, versions and key locations help an attacker; only the box itself may ask
        # until staff sign-in exists (security issue).
        client = request.client.host if request.client else ""
        if not _is_loopback(client):
            raise PermissionDeniedException("detailed health is only served to the local host")
        settings: Settings = state.settings
        checks = [
            *check_database(state.database),
            *check_keys(settings),
            *check_models(settings, full=full),
            check_disk(settings.data_dir),
            check_gpu(),
        ]
        overall = "fail" if any(c.status == "fail" for c in checks) else "ok"
        return {"status": overall, "version": __version__, "checks": [c.as_dict() for c in checks]}


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
