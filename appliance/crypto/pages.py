"""Console for administrators: the key-encryption keys and their rotation.

The page runs the very services `appliance keys rotate` and `appliance keys purge-retired` run
(`rotate_kek`, `purge_retired`) and audits them under the same actions; both need an explicit
confirmation box, since purging makes key-store backups from before the rotation unreadable.
Only key ids and counts are shown: never key material.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel, func, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import AuditEntry, record
from appliance.auth.guards import Principal
from appliance.clinic.models import Role
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import purge_retired, rotate_kek
from appliance.web.i18n import N_, _
from appliance.web.pages import PageController, page, see_other

NOTICES = {
    "rotated": N_("Rotated: a new key-encryption key wraps every patient key."),
    "purged": N_("Retired keys that no patient key needed any more were destroyed."),
    "nothing": N_("No retired key could be destroyed: none, or each is still in use."),
}


class ConfirmForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    confirm: str = Field(default="", max_length=10)


FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass(frozen=True)
class KekRow:
    id: str
    status: str  # current | rotating | retired
    created: datetime | None  # the key file's time: when this appliance wrote it
    patient_keys: int


def key_overview(store: KeyStore, zone: ZoneInfo) -> list[KekRow]:
    """Every KEK the store holds, with how many patient data keys each one wraps."""
    wrapped: Counter[str] = Counter()
    for path in sorted(store.patients_dir.glob("*.json")) if store.patients_dir.is_dir() else []:
        try:
            wrapped[str(json.loads(path.read_bytes())["kek_id"])] += 1
        except (OSError, ValueError, KeyError):
            wrapped["?"] += 1
    found: list[KekRow] = []
    places: list[tuple[str, Path]] = [("current", store.current_kek_path)]
    places += [("rotating", p) for p in sorted(store.keys_dir.glob("kek-*.key"))]
    if store.retired_dir.is_dir():
        places += [("retired", p) for p in sorted(store.retired_dir.glob("kek-*.key"))]
    for status, path in places:
        if not path.is_file():
            continue
        kek_id = _kek_id(path)
        created = datetime.fromtimestamp(path.stat().st_mtime, UTC).astimezone(zone)
        found.append(KekRow(kek_id, status, created, wrapped.pop(kek_id, 0)))
    found += [KekRow(kek_id, "missing", None, count) for kek_id, count in wrapped.items()]
    return found


def _kek_id(path: Path) -> str:
    """The id inside a KEK file, read without touching the key itself."""
    try:
        return str(json.loads(path.read_bytes())["id"])
    except (OSError, ValueError, KeyError):
        return path.stem


class KeyPages(PageController):
    path = "/console/keys"

    @get("/", sync_to_thread=True)
    def keys(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        return _keys_page(request, principal, db_session, state, notice=done)

    @post("/rotate", sync_to_thread=True)
    def rotate(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[ConfirmForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """As `appliance keys rotate`: new KEK, every data key re-wrapped, old KEK retired."""
        principal.require(Role.admin)
        if data.confirm != "yes":
            return _keys_page(
                request, principal, db_session, state,
                error=_("Tick the box to confirm the rotation."), status_code=422,
            )  # fmt: skip
        rotation = rotate_kek(state.keystore)
        details = {
            "old_kek_id": rotation.old_kek_id,
            "new_kek_id": rotation.new_kek_id,
            "rewrapped": rotation.rewrapped,
        }
        record(db_session, principal.actor(), AuditEntry("keys.rotate", details=details))
        db_session.commit()
        return see_other("/console/keys?done=rotated")

    @post("/purge-retired", sync_to_thread=True)
    def purge(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[ConfirmForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """As `appliance keys purge-retired --yes`: destroy retired KEKs no key depends on."""
        principal.require(Role.admin)
        if data.confirm != "yes":
            return _keys_page(
                request, principal, db_session, state,
                error=_("Tick the box to confirm: older key-store backups become unreadable."),
                status_code=422,
            )  # fmt: skip
        purged = purge_retired(state.keystore)
        record(
            db_session,
            principal.actor(),
            AuditEntry("keys.purge_retired", details={"kek_ids": purged}),
        )
        db_session.commit()
        return see_other(f"/console/keys?done={'purged' if purged else 'nothing'}")


def _keys_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    db_session: Session,
    state: State,
    *,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    zone = ZoneInfo(state.settings.clinic.timezone)
    rotations = db_session.exec(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "keys.rotate")
    ).one()
    return page(
        request,
        "keys.html",
        principal,
        status_code=status_code,
        title=_("Encryption keys"),
        keks=key_overview(state.keystore, zone),
        rotations=rotations,
        zone=state.settings.clinic.timezone,
        notice=_(NOTICES[notice]) if notice in NOTICES else None,
        error=error,
    )
