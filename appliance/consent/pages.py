"""Console: one patient's consent. Each purpose shows its current state and one button;
withdrawing is exactly as many steps as granting (one). Every change is a new ledger row."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import Principal
from appliance.clinic import access
from appliance.consent import service
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.web.pages import PageController, page, see_other

NOTICES = {"granted": "Consent recorded.", "revoked": "Consent withdrawn."}


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
        return page(
            request,
            "consent.html",
            principal,
            title=f"Consent · {patient.name}",
            patient=patient,
            purposes=service.current(db_session, patient_id),
            history=list(reversed(service.history(db_session, patient_id))),
            methods=[m for m in ConsentMethod if m != ConsentMethod.portal],
            notice=NOTICES.get(done or ""),
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
