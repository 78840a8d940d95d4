"""The paper-consent form with its scanned page, for browsers without JavaScript: a plain
multipart/form-data POST read as it streams (appliance/web/streamed_form.py: a signed consent
form, a name and a signature, is never on disk in clear). The form puts its CSRF token and its
choices before the file, so the signed-in user, the token and the patient's visibility are
checked before a single byte of the scan is stored.
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
from appliance.consent import evidence, service
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.errors import Invalid
from appliance.web.i18n import _
from appliance.web.pages import SignInRequired
from appliance.web.streamed_form import StreamedForm

FILE_FIELD = "evidence"
TEXT_FIELDS = {"csrf_token": 128, "purpose": 32, "action": 16}  # the longest value of each


@dataclass
class PaperUpload:
    request: Request[Any, Any, Any]
    db_session: Session
    state: State
    patient_id: uuid.UUID
    principal: Principal | None = None
    form: StreamedForm | None = None

    @property
    def fields(self) -> dict[str, list[str]]:
        return self.form.fields if self.form is not None else {}

    async def receive(self) -> None:
        """Parse, store the encrypted scan, then the ledger rows and the evidence row in one
        transaction; a refusal or a failed commit removes the file."""
        cap = evidence.MAX_BYTES
        form = self.form = StreamedForm(
            self.request, file_field=FILE_FIELD, text_fields=TEXT_FIELDS, max_file_bytes=cap
        )
        opened: list[evidence.IncomingEvidence] = []

        async def start(file_name: str | None) -> evidence.IncomingEvidence:
            opened.append(await self._start(file_name or ""))
            return opened[0]

        try:
            if form.boundary is None:
                raise Invalid(_("send the form with the scanned consent form attached"))
            if form.too_large:
                raise evidence.EvidenceTooLarge(
                    _("evidence files are limited to %(mib)s MiB") % {"mib": cap // 2**20}
                )
            try:
                incoming = await form.read(start)
            except Exception as exc:
                if form.incomplete(exc):
                    raise Invalid(_("the form arrived incomplete; try again")) from None
                raise
            if incoming is None:
                await self._authenticate()  # a form without its token is refused as such
                raise Invalid(_("attach the scanned consent form"))
            stored = await anyio.to_thread.run_sync(incoming.finish)
            opened.clear()  # complete: from here on `_record` owns the file
            await anyio.to_thread.run_sync(self._record, stored)
        except BaseException:
            for sink in opened:
                sink.abort()
            await form.drain()  # so the browser reads our answer
            raise

    def _choices(self) -> tuple[list[Purpose], ConsentStatus]:
        try:
            purposes = [Purpose(value) for value in self.fields.get("purpose", [])]
            action = ConsentStatus((self.fields.get("action") or ["granted"])[0])
        except ValueError:
            raise Invalid(_("choose known purposes and a known change")) from None
        if not purposes:
            raise Invalid(_("choose at least one purpose the form covers"))
        return purposes, action

    async def _authenticate(self) -> Principal:
        """The signed-in staff member, with the form's CSRF token checked (403 without)."""
        csrf = (self.fields.get("csrf_token") or [""])[0]
        try:
            self.principal = await anyio.to_thread.run_sync(
                session_principal, self.request, self.db_session, self.state, csrf
            )
        except NotAuthorizedException:
            raise SignInRequired from None
        self.principal.require(*access.STAFF)
        return self.principal

    async def _start(self, file_name: str) -> evidence.IncomingEvidence:
        """Sign-in and CSRF, the choices, then the patient (404 unless visible, audited)."""
        principal = await self._authenticate()
        _purposes, action = self._choices()
        await anyio.to_thread.run_sync(
            access.require_visible,
            self.db_session,
            principal,
            self.patient_id,
            f"consent.{action.value}",
        )
        return await anyio.to_thread.run_sync(
            evidence.IncomingEvidence,
            self.state.keystore,
            self.state.settings.files_dir,
            self.patient_id,
            file_name,
        )

    def _record(self, stored: evidence.StoredEvidence) -> None:
        assert self.principal is not None  # set when the file part began
        purposes, action = self._choices()
        try:
            service.change(
                self.db_session,
                self.principal.actor(),
                self.patient_id,
                purposes,
                action,
                ConsentMethod.paper,
                evidence=stored,
                store=self.state.keystore,
            )
            self.db_session.commit()
        except BaseException:
            stored.discard()
            self.db_session.rollback()
            raise
