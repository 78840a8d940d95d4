"""Console: a patient's sessions, and each session's pipeline progress."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Session

from appliance.auth.guards import Principal
from appliance.clinic import access
from appliance.recordings import service
from appliance.web.pages import PageController, page


class SessionPages(PageController):
    path = "/console"

    @get("/patients/{patient_id:uuid}/sessions", sync_to_thread=True)
    def sessions(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(*access.STAFF)
        patient = access.read_visible_patient(
            db_session, state.keystore, principal, patient_id, "session.list"
        )
        listed = service.list_sessions(
            db_session,
            access.visible_patient_ids(principal),
            patient_id=patient_id,
            cursor=cursor,
            limit=25,
        )
        return page(
            request,
            "sessions.html",
            principal,
            title=f"Sessions · {patient.name}",
            patient=patient,
            listed=listed,
        )

    @get("/sessions/{session_id:uuid}", sync_to_thread=True)
    def progress(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Template:
        """The same facts as GET /api/v1/sessions/{id}/status; reloads itself while busy."""
        principal.require(*access.STAFF)
        row = service.get_session(db_session, access.visible_patient_ids(principal), session_id)
        found = service.progress(db_session, row)
        busy = any(
            stage.state in ("queued", "running", "failed")
            for recording in found.recordings
            for stage in recording.stages
        )
        return page(
            request,
            "session.html",
            principal,
            title=f"Session of {row.session_date.isoformat()}",
            session=row,
            progress=found,
            refresh_seconds=5 if busy else None,
        )
