"""The console's upload form, for browsers without JavaScript: a multipart/form-data POST that
goes down the same ingest path as `POST /api/v1/sessions/{id}/recording` (consent checked,
size-capped while streaming, decoded to prove it is audio, encrypted as it arrives). The body is
read as it streams (appliance/web/streamed_form.py: never spooled in clear); the form puts its
CSRF token before the file, so the signed-in user and the token are checked before a single
byte of the recording is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import anyio
from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException
from sqlmodel import Session

from appliance.auth.guards import Principal, session_principal
from appliance.clinic import access
from appliance.errors import Invalid
from appliance.recordings import ingest, service
from appliance.recordings.models import TherapySession
from appliance.recordings.probe import TooLarge
from appliance.web.i18n import _
from appliance.web.pages import SignInRequired
from appliance.web.streamed_form import StreamedForm

FILE_FIELD = "recording"
CSRF_FIELD = "csrf_token"
MAX_TOKEN = 128


@dataclass
class FormUpload:
    """One form post in progress; what the page needs to show an error on the session page
    (who is signed in and which session) is kept once known."""

    request: Request[Any, Any, Any]
    db_session: Session
    state: State
    session_id: uuid.UUID
    principal: Principal | None = None
    row: TherapySession | None = None

    async def receive(self) -> ingest.Accepted:
        settings = self.state.settings
        form = StreamedForm(
            self.request,
            file_field=FILE_FIELD,
            text_fields={CSRF_FIELD: MAX_TOKEN},
            max_file_bytes=settings.recordings.max_upload_mb * 1024 * 1024,
            max_segments=4,
        )
        if form.boundary is None:
            await self._authenticate("")  # no form, so no token: 403 (or sign in) first
            raise Invalid(_("send the upload form with a recording file"))
        if form.too_large:
            raise TooLarge(
                _("recordings are limited to %(mb)s MB") % {"mb": settings.recordings.max_upload_mb}
            )
        opened: list[ingest.IncomingRecording] = []

        async def start(filename: str | None) -> ingest.IncomingRecording:
            opened.append(await self._start(form.first(CSRF_FIELD), filename))
            return opened[0]

        try:
            incoming = await form.read(start)
            if incoming is None:  # a form without the file: still signed in, with the token?
                await self._authenticate(form.first(CSRF_FIELD))
                raise Invalid(_("choose a recording file to upload"))
            done = await anyio.to_thread.run_sync(incoming.finish, self.db_session)
        except BaseException as exc:
            for sink in opened:
                sink.abort()
            if form.incomplete(exc):
                raise Invalid(_("the upload form arrived incomplete; try again")) from None
            await form.drain()  # so the browser reads our answer
            raise
        await anyio.to_thread.run_sync(self.state.queue.wake)
        return done

    async def _authenticate(self, csrf: str) -> Principal:
        try:
            principal = await anyio.to_thread.run_sync(
                session_principal, self.request, self.db_session, self.state, csrf
            )
        except NotAuthorizedException:
            raise SignInRequired from None
        principal.require(*access.STAFF)
        self.principal = principal
        return principal

    async def _start(self, csrf: str, filename: str | None) -> ingest.IncomingRecording:
        """Sign-in and CSRF, the session (404 unless visible), then consent (403, audited)."""
        principal = await self._authenticate(csrf)
        self.row = await anyio.to_thread.run_sync(
            service.get_session,
            self.db_session,
            access.visible_patient_ids(principal),
            self.session_id,
            principal.actor(),
            "recording.upload",
        )
        row = self.row
        prepared = await anyio.to_thread.run_sync(
            lambda: ingest.prepare(
                self.db_session,
                self.state.settings,
                self.state.keystore,
                principal.actor(),
                row,
                filename,
                None,
            )
        )
        assert isinstance(prepared, ingest.IncomingRecording)  # no idempotency key: never a replay
        return prepared
