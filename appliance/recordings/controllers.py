"""Therapy sessions over HTTP: create, list with cursor pagination, read, update, release."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlmodel import Session

from appliance.auth.guards import Principal, provide_principal
from appliance.clinic import access
from appliance.clinic.models import Role
from appliance.errors import Invalid
from appliance.recordings import ingest, service
from appliance.recordings.partials import require_space
from appliance.recordings.probe import TooLarge
from appliance.recordings.schemas import (
    SessionCreate,
    SessionPage,
    SessionProgress,
    SessionPublic,
    SessionUpdate,
    UploadAccepted,
)
from appliance.settings import Settings


class SessionController(Controller):
    path = "/api/v1/sessions"
    tags = ["sessions"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @post("/", sync_to_thread=True)
    def create(
        self,
        data: JSONBody[SessionCreate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> SessionPublic:
        principal.require(*access.STAFF)
        access.require_visible(db_session, principal, data.patient_id, "session.create")
        created = service.add_session(db_session, principal.actor(), data)
        db_session.commit()
        return created

    @get("/", sync_to_thread=True)
    def list_sessions(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        patient_id: FromQuery[uuid.UUID | None] = None,
        therapist_id: FromQuery[uuid.UUID | None] = None,
        date_from: FromQuery[date | None] = None,
        date_to: FromQuery[date | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=service.MAX_PAGE)] = 50,
    ) -> SessionPage:
        """Newest first. Pass `next_cursor` back as `cursor` for the next page."""
        principal.require(*access.CLINICAL_ROLES)
        return service.list_sessions(
            db_session,
            access.visible_patient_ids(principal),
            patient_id=patient_id,
            therapist_id=therapist_id,
            date_from=date_from,
            date_to=date_to,
            cursor=cursor,
            limit=limit,
        )

    @get("/{session_id:uuid}", sync_to_thread=True)
    def read(
        self,
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> SessionPublic:
        principal.require(*access.CLINICAL_ROLES)
        visible = access.visible_patient_ids(principal)
        row = service.get_session(db_session, visible, session_id, principal.actor())
        return SessionPublic.model_validate(row, from_attributes=True)

    @patch("/{session_id:uuid}", sync_to_thread=True)
    def update(
        self,
        session_id: FromPath[uuid.UUID],
        data: JSONBody[SessionUpdate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> SessionPublic:
        principal.require(*access.STAFF)
        visible = access.visible_patient_ids(principal)
        row = service.get_session(
            db_session, visible, session_id, principal.actor(), "session.update"
        )
        updated = service.update_session(db_session, principal.actor(), row, data)
        db_session.commit()
        return updated

    @post(
        "/{session_id:uuid}/recording",
        status_code=HTTP_202_ACCEPTED,
        request_max_body_size=None,  # the cap is ours, enforced while streaming (413)
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        filename: Annotated[str | None, QueryParameter(max_length=255)] = None,
    ) -> UploadAccepted:
        """Stream a recording (raw body). Encrypted as it arrives; proven to be audio by
        decoding; `Idempotency-Key` makes a retry return the first upload."""
        principal.require(*access.STAFF)
        settings: Settings = state.settings
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.recordings.max_upload_mb * 1024 * 1024:
            raise TooLarge(f"recordings are limited to {settings.recordings.max_upload_mb} MB")
        if declared.isdigit():  # 507 at once when the declared body would not fit
            await anyio.to_thread.run_sync(require_space, settings, int(declared))
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 128:
            raise Invalid("Idempotency-Key must be 1 to 128 characters")
        visible = access.visible_patient_ids(principal)
        row = await anyio.to_thread.run_sync(
            service.get_session,
            db_session,
            visible,
            session_id,
            principal.actor(),
            "recording.upload",
        )
        prepared = await anyio.to_thread.run_sync(
            lambda: ingest.prepare(
                db_session, settings, state.keystore, principal.actor(), row, filename, key
            )
        )
        if isinstance(prepared, ingest.Accepted):
            return UploadAccepted.of(prepared)
        try:
            async for piece in request.stream():
                prepared.write(piece)  # encrypts in ~1 MiB chunks; cheap next to the network
        except BaseException:
            prepared.abort()
            raise
        done = await anyio.to_thread.run_sync(prepared.finish, db_session)
        if not done.replayed:
            await anyio.to_thread.run_sync(state.queue.wake)  # a SQLite write: off the loop
        return UploadAccepted.of(done)

    @get("/{session_id:uuid}/status", sync_to_thread=True)
    def status(
        self,
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> SessionProgress:
        """Each recording's pipeline stages with state, progress and the last error."""
        principal.require(*access.STAFF)
        visible = access.visible_patient_ids(principal)
        row = service.get_session(
            db_session, visible, session_id, principal.actor(), "session.status"
        )
        return service.progress(db_session, row)

    @post("/{session_id:uuid}/release", sync_to_thread=True)
    def release(
        self,
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> SessionPublic:
        """Let the patient ask about this session (a therapist of the patient only)."""
        principal.require(Role.therapist)
        visible = access.visible_patient_ids(principal)
        row = service.get_session(
            db_session, visible, session_id, principal.actor(), "session.release"
        )
        released = service.release(db_session, principal.actor(), row)
        db_session.commit()
        return released
