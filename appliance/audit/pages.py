"""Console: the audit log, for administrators and auditors.

Auditors are read-only and see no clinical data: this page shows audit rows only, which hold
ids and counts, never names or text. Filters are plain GET parameters (bookmarkable, no
JavaScript), pagination is a cursor (the last id shown) that keeps the filters. "Verify now"
checks the live chain and its signed checkpoints with the verifier of `appliance audit verify`;
"Export bundle" writes the same bundle as `appliance audit export`. Viewing, verifying and
exporting are themselves audited.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template
from sqlmodel import Session, col, select

from appliance.audit import service as audit
from appliance.audit.chain import verify_bundle
from appliance.audit.models import AuditCheckpoint, AuditEvent
from appliance.auth.guards import Principal
from appliance.backup.checks import audit_public_keys
from appliance.clinic.models import Role, User
from appliance.web.i18n import _
from appliance.web.pages import PageController, page
from appliance.web.security import SECURITY_HEADERS

PAGE_SIZE = 50
OUTCOMES = ("success", "denied", "failure")
READERS = (Role.admin, Role.auditor)
Text = Annotated[str, QueryParameter(max_length=100)]


@dataclass(frozen=True)
class AuditFilters:
    """What the filter form sent, kept as text so that the form shows it back as typed."""

    action: str = ""
    outcome: str = ""
    actor: str = ""
    patient: str = ""
    date_from: str = ""
    date_to: str = ""
    # The reader's own `audit.view` entries (one per page shown) would flood the list: hidden
    # unless the box is unticked. A ticked box sends hide_views=1, an unticked one nothing, so
    # the form also sends filtered=1 to tell "unticked" from "a plain first visit".
    hide_views: bool = True

    def used(self) -> list[str]:
        named = [f.name for f in fields(self) if f.name != "hide_views" and getattr(self, f.name)]
        return named if self.hide_views else [*named, "show_views"]

    def query(self, **extra: Any) -> str:
        values: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "hide_views"
        }
        values.update(filtered=1, hide_views=1 if self.hide_views else "", **extra)
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def selected(filters: AuditFilters, zone: ZoneInfo) -> tuple[Any, list[str]]:
    """The SELECT for `filters` (newest first) and the problems with what was typed."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc())
    problems: list[str] = []
    if filters.hide_views:
        query = query.where(AuditEvent.action != "audit.view")
    if filters.action.strip():
        prefix = filters.action.strip()
        for special in ("\\", "%", "_"):  # LIKE's own characters match themselves
            prefix = prefix.replace(special, "\\" + special)
        query = query.where(col(AuditEvent.action).like(f"{prefix}%"))
    if filters.outcome:
        if filters.outcome in OUTCOMES:
            query = query.where(AuditEvent.outcome == filters.outcome)
        else:
            problems.append(_("The outcome is one of success, denied, failure."))
    if filters.actor.strip():
        actor_id = _uuid(filters.actor)
        if actor_id is not None:
            query = query.where(AuditEvent.actor_id == actor_id)
        else:  # a role: admin, therapist, patient, auditor, cli, system
            query = query.where(AuditEvent.actor_role == filters.actor.strip().lower())
    if filters.patient.strip():
        patient_id = _uuid(filters.patient)
        if patient_id is None:
            problems.append(_("The patient filter takes a patient id."))
        else:
            query = query.where(AuditEvent.patient_id == patient_id)
    for name, bound in (("date_from", 0), ("date_to", 1)):
        raw = getattr(filters, name)
        if not raw:
            continue
        day = _day(raw)
        if day is None:
            problems.append(_("Dates are written as YYYY-MM-DD."))
            continue
        # A day in the clinic's time zone; the "to" day is included whole.
        moment = datetime.combine(day + timedelta(days=bound), time.min, zone).astimezone(UTC)
        query = query.where(AuditEvent.ts >= moment if bound == 0 else AuditEvent.ts < moment)
    return query, problems


def staff_names(session: Session, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """Name and e-mail of the staff among these actors, so a reader sees "Alice Adams
    (therapist)" rather than a bare id. Staff names are not patient data; a patient's user
    row is never read here (auditors must not learn who a patient is), whatever role the
    audit row claims: the users table's own role decides."""
    if not user_ids:
        return {}
    found = session.exec(
        select(User.id, User.name, User.email).where(
            col(User.id).in_(user_ids), User.role != Role.patient.value
        )
    )
    return {user_id: (name, email) for user_id, name, email in found}


def detail_items(details: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An entry's details (ids and counts) as key: value pairs to read, not raw JSON."""
    items: list[tuple[str, str]] = []
    for key, value in (details or {}).items():
        if isinstance(value, list | tuple):
            text = ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, bool):
            text = _("yes") if value else _("no")
        else:
            text = str(value)
        items.append((str(key), text))
    return items


class AuditPages(PageController):
    path = "/console/audit"

    @get("/", sync_to_thread=True)
    def log(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        action: Text = "",
        outcome: Text = "",
        actor: Text = "",
        patient: Text = "",
        date_from: Text = "",
        date_to: Text = "",
        hide_views: Text = "",
        filtered: Text = "",
        cursor: Annotated[int | None, QueryParameter(ge=1)] = None,
    ) -> Template:
        """One page of entries, newest first; `cursor` is the last id of the page before."""
        principal.require(*READERS)
        zone = ZoneInfo(state.settings.clinic.timezone)
        filters = AuditFilters(
            action,
            outcome,
            actor,
            patient,
            date_from,
            date_to,
            hide_views=bool(hide_views) or not filtered,
        )
        query, problems = selected(filters, zone)
        rows: list[AuditEvent] = []
        if not problems:
            if cursor is not None:
                query = query.where(col(AuditEvent.id) < cursor)
            rows = list(db_session.exec(query.limit(PAGE_SIZE + 1)))
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        audit.record(
            db_session,
            principal.actor(),
            audit.AuditEntry(
                "audit.view",
                details={"filters": filters.used(), "rows": len(rows), "paged": cursor is not None},
            ),
        )
        db_session.commit()
        return page(
            request,
            "audit.html",
            principal,
            title=_("Audit log"),
            wide=True,
            detail_items=detail_items,
            filters=filters,
            outcomes=OUTCOMES,
            rows=[(row, row.ts.astimezone(zone)) for row in rows],
            staff=staff_names(db_session, {row.actor_id for row in rows if row.actor_id}),
            next_query=filters.query(cursor=rows[-1].id) if more and rows else None,
            first_query=filters.query() if cursor is not None else None,
            error=" ".join(problems) or None,
            zone=state.settings.clinic.timezone,
        )

    @get("/verify", sync_to_thread=True)
    def verify(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        """Check the live chain and its signed checkpoints, as `appliance audit verify` would
        check an export of it (the same verifier, on the same records)."""
        principal.require(*READERS)
        keys = audit_public_keys(state.settings.audit_key_path)
        entries, marks = audit.chain_records(db_session)
        verdict = verify_bundle(
            {
                "format": audit.BUNDLE_FORMAT,
                "public_keys": keys,
                "entries": entries,
                "checkpoints": marks,
            }
        )
        latest = db_session.exec(
            select(AuditCheckpoint).order_by(col(AuditCheckpoint.id).desc()).limit(1)
        ).first()
        audit.record(
            db_session,
            principal.actor(),
            audit.AuditEntry(
                "audit.verify",
                "success" if verdict.ok else "failure",
                details={
                    "ok": verdict.ok,
                    "entries": verdict.entries,
                    "checkpoints": verdict.checkpoints,
                },
            ),
        )
        db_session.commit()
        zone = ZoneInfo(state.settings.clinic.timezone)
        return page(
            request,
            "audit_verify.html",
            principal,
            title=_("Audit log verification"),
            verdict=verdict,
            key_ids=sorted(keys),
            latest=latest,
            latest_at=latest.created_at.astimezone(zone) if latest else None,
            checked_at=datetime.now(zone),
            zone=state.settings.clinic.timezone,
        )

    @post("/export", status_code=200, sync_to_thread=True)
    def export(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[bytes]:
        """The bundle `appliance audit export` writes: the export recorded, the head signed,
        then every entry, checkpoint and the public key. Verifiable offline."""
        principal.require(*READERS)
        key = audit.load_signing_key(state.settings.audit_key_path)
        with tempfile.TemporaryDirectory(prefix="audit-export-") as folder:
            out = Path(folder) / "bundle.json"
            audit.export_signed(db_session, principal.actor(), key, out)
            body = out.read_bytes()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return Response(
            content=body,
            media_type="application/json",
            headers={
                **SECURITY_HEADERS,
                "content-disposition": f'attachment; filename="audit-export-{stamp}.json"',
            },
        )
