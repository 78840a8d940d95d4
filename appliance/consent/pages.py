"""Console: one patient's consent. Each purpose shows its current state and one button;
withdrawing is exactly as many steps as granting (one). Every change is a new ledger row.

Consent given on paper can carry the scanned form: a plain multipart form (works without
JavaScript), encrypted with the patient's key as it is stored, downloadable by staff who see
the patient (each download audited)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Stream, Template
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import Principal
from appliance.clinic import access
from appliance.consent import evidence, service
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.consent.paper_upload import PaperUpload
from appliance.portal.consents import MEANINGS
from appliance.web.i18n import N_, _
from appliance.web.pages import PageController, page, see_other
from appliance.web.security import SECURITY_HEADERS
from appliance.web.streamed_form import FORM_OVERHEAD

NOTICES = {
    "granted": N_("Consent recorded."),
    "revoked": N_("Consent withdrawn."),
    "paper": N_("Paper consent recorded with its scanned form."),
}
# How staff read each purpose (lower case: it also goes inside "Give %(purpose)s").
PURPOSE_LABELS = {
    Purpose.recording: N_("recording"),
    Purpose.transcription: N_("transcription"),
    Purpose.ai_analysis: N_("AI analysis"),
    Purpose.patient_chat: N_("patient chat"),
}
# The form's own fields on top of the file: a refusal past this comes from the server (413).
PAPER_BODY_LIMIT = evidence.MAX_BYTES + FORM_OVERHEAD


class ConsentForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    purpose: Purpose
    action: ConsentStatus
    method: ConsentMethod = ConsentMethod.in_person


class ConsentPages(PageController):
    path = "/console/patients/{patient_id:uuid}/consent"

    @get("/", sync_to_thread=True)
    def show(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(*access.STAFF)
        patient = access.read_visible_patient(
            db_session, state.keystore, principal, patient_id, "consent.read"
        )
        files = evidence.for_patient(db_session, patient_id)
        return page(
            request,
            "consent.html",
            principal,
            title=_("Consent · %(name)s") % {"name": patient.name},
            patient=patient,
            purposes=service.current(db_session, patient_id),
            all_purposes=list(Purpose),
            history=list(reversed(service.history(db_session, patient_id))),
            evidence=files,
            evidence_by_sha={row.sha256: row for row in files.values()},
            methods=[m for m in ConsentMethod if m != ConsentMethod.portal],
            purpose_labels=PURPOSE_LABELS,
            meanings=MEANINGS,
            max_evidence_mib=evidence.MAX_BYTES // 2**20,
            notice=_(NOTICES[done]) if done in NOTICES else None,
        )

    @post("/", sync_to_thread=True)
    def change(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        data: Annotated[ConsentForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        principal.require(*access.STAFF)
        access.require_visible(db_session, principal, patient_id, f"consent.{data.action.value}")
        service.change(
            db_session, principal.actor(), patient_id, [data.purpose], data.action, data.method
        )
        db_session.commit()
        return see_other(f"/console/patients/{patient_id}/consent?done={data.action.value}")

    @post("/paper", request_max_body_size=PAPER_BODY_LIMIT)
    async def paper(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """Consent given on paper, with the scanned form (PDF, JPEG or PNG, by content).
        No `principal` dependency: that would parse the whole form (and spool the scan in
        clear) to find the CSRF token; `PaperUpload` checks both as the body streams."""
        await PaperUpload(request, db_session, state, patient_id).receive()
        return see_other(f"/console/patients/{patient_id}/consent?done=paper")

    @get("/evidence/{evidence_id:uuid}", sync_to_thread=True)
    def evidence_file(
        self,
        patient_id: FromPath[uuid.UUID],
        evidence_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Stream:
        """The scanned form, decrypted as it is sent (audited `consent.evidence.read`)."""
        principal.require(*access.STAFF)
        access.require_visible(db_session, principal, patient_id, "consent.evidence.read")
        found = evidence.open_for_download(
            db_session,
            state.keystore,
            state.settings.files_dir,
            principal.actor(),
            patient_id,
            evidence_id,
        )
        return Stream(
            found.chunks,
            media_type=found.content_type,
            headers={
                **SECURITY_HEADERS,
                "content-length": str(found.size_bytes),
                "content-disposition": f"attachment; filename*=UTF-8''{quote(found.file_name)}",
            },
        )
