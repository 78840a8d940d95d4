"""Console for administrators: which models the appliance is set to use, and their state.

For each configured model: its role and name, the sha256 the manifest expects of each file,
whether the installed files are there with the right sizes (cheap, every view), the result of
the last full hash check (slow for large weights, so run on demand with a button and kept in
`<data_dir>/metrics/model-verify.json`), the device the settings ask for, the last load time
any process recorded, and whether the LLM service answers its health check.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template
from sqlmodel import Session

from appliance.audit.service import AuditEntry, record
from appliance.auth.guards import Principal
from appliance.chat.llm import LlamaServiceClient, ModelUnavailable
from appliance.clinic.models import Role
from appliance.doctor import configured_models
from appliance.modelfiles.install import check_model
from appliance.modelfiles.manifest import ModelEntry, ModelError, load_manifest
from appliance.observability.loads import loads_dir, model_load_seconds
from appliance.settings import Settings
from appliance.web.i18n import _
from appliance.web.pages import PageController, page, see_other

VERIFY_FILE = "model-verify.json"


@dataclass(frozen=True)
class ModelRow:
    name: str
    role: str
    entry: ModelEntry | None  # None: configured but not in the manifest
    installed: str  # ok | missing | corrupted | unknown
    installed_detail: str
    verified: dict[str, Any] | None  # the last full check: status, detail, at
    device: str
    load_seconds: float | None


def device_for(settings: Settings, role: str) -> str:
    """The device the settings ask for, in the words of each section."""
    if role == "llm":
        layers = settings.llm.n_gpu_layers
        if layers == 0:
            return "cpu"
        return "gpu (all layers)" if layers < 0 else f"gpu ({layers} layers)"
    section = {
        "transcription": settings.transcription.device,
        "embedding": settings.retrieval.device,
        "diarization": settings.diarization.device,
        "vad": settings.diarization.device,
        "speaker_embedding": settings.diarization.device,
    }
    return section.get(role, "cpu")


def model_rows(settings: Settings) -> list[ModelRow]:
    try:
        entries = {entry.name: entry for entry in load_manifest()}
    except ModelError:
        entries = {}
    verified = _read_verified(settings)
    loads = model_load_seconds(loads_dir(settings))
    rows = []
    for name in configured_models(settings):
        entry = entries.get(name)
        if entry is None:
            rows.append(
                ModelRow(name, "?", None, "unknown", _("not in the manifest"), None, "", None)
            )
            continue
        quick = check_model(entry, settings.resolved_models_dir, full=False)
        rows.append(
            ModelRow(
                name,
                entry.role,
                entry,
                quick.status,
                quick.detail,
                verified.get(name),
                device_for(settings, entry.role),
                loads.get(name),
            )
        )
    return rows


def verify_all(settings: Settings) -> dict[str, dict[str, Any]]:
    """Re-hash every configured model's files against the manifest; keep the result."""
    at = datetime.now(UTC).isoformat()
    results: dict[str, dict[str, Any]] = {}
    entries = {entry.name: entry for entry in load_manifest()}
    for name in configured_models(settings):
        entry = entries.get(name)
        if entry is None:
            results[name] = {"status": "missing", "detail": "not in the manifest", "at": at}
            continue
        check = check_model(entry, settings.resolved_models_dir, full=True)
        results[name] = {"status": check.status, "detail": check.detail, "at": at}
    folder = loads_dir(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = folder / f".{VERIFY_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps(results, indent=1))
    temporary.replace(folder / VERIFY_FILE)
    return results


def _read_verified(settings: Settings) -> dict[str, dict[str, Any]]:
    try:
        found = json.loads((loads_dir(settings) / VERIFY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def llm_health(settings: Settings) -> dict[str, Any]:
    """The LLM service's `/health` answer, or why it could not be asked."""
    with LlamaServiceClient.from_settings(settings) as client:
        try:
            return {"reachable": True, **client.health()}
        except ModelUnavailable as exc:
            return {"reachable": False, "error": str(exc)}


class ModelPages(PageController):
    path = "/console/models"

    @get("/", sync_to_thread=True)
    def models(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        settings: Settings = state.settings
        zone = ZoneInfo(settings.clinic.timezone)
        rows = model_rows(settings)
        return page(
            request,
            "models.html",
            principal,
            title=_("Models"),
            wide=True,
            models=rows,
            verified_at={
                row.name: datetime.fromisoformat(row.verified["at"]).astimezone(zone)
                for row in rows
                if row.verified and row.verified.get("at")
            },
            llm=llm_health(settings),
            llm_address=f"{settings.llm.host}:{settings.llm.port}",
            models_dir=str(settings.resolved_models_dir),
            zone=settings.clinic.timezone,
            notice=_("Every configured model's files were hashed again.")
            if done == "verified"
            else None,
        )

    @post("/verify", sync_to_thread=True)
    def verify(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """Hash every file of every configured model (seconds per 500 MB); audited."""
        principal.require(Role.admin)
        results = verify_all(state.settings)
        record(
            db_session,
            principal.actor(),
            AuditEntry(
                "models.verify",
                "success" if all(r["status"] == "ok" for r in results.values()) else "failure",
                details={name: result["status"] for name, result in results.items()},
            ),
        )
        db_session.commit()
        return see_other("/console/models?done=verified")
