"""Console: invite a patient to the portal. Any staff member who sees the patient (an
administrator, or one of the patient's therapists) may; anyone else gets the same 404 as for a
patient that does not exist, and the attempt is audited. The code is in the body of the
POST's response only (see appliance.auth.invitations)."""

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

from appliance.auth import invitations
from appliance.auth.guards import Principal
from appliance.clinic import access
from appliance.errors import DomainError
from appliance.web.i18n import _
from appliance.web.pages import PageController, page, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


class InvitationForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)


class InvitationPages(PageController):
    path = "/console/patients/{patient_id:uuid}/portal"

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
        notice = _("The invitation was revoked.") if done == "revoked" else None
        return self._render(request, patient_id, principal, db_session, state, notice=notice)

    @post("/", sync_to_thread=True)
    def create(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        data: Annotated[InvitationForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        principal.require(*access.STAFF)
        access.require_visible(db_session, principal, patient_id, "portal.invitation.create")
        try:
            issued = invitations.create(db_session, principal.actor(), patient_id)
        except DomainError as refused:
            db_session.rollback()
            return self._render(
                request,
                patient_id,
                principal,
                db_session,
                state,
                status_code=refused.status_code,
                error=_(str(refused)),
            )
        db_session.commit()
        return self._render(
            request, patient_id, principal, db_session, state, status_code=201, issued=issued
        )

    @post("/{invitation_id:uuid}/revoke", sync_to_thread=True)
    def revoke(
        self,
        patient_id: FromPath[uuid.UUID],
        invitation_id: FromPath[uuid.UUID],
        data: Annotated[InvitationForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> Response[Any]:
        principal.require(*access.STAFF)
        access.require_visible(db_session, principal, patient_id, "portal.invitation.revoke")
        invitations.revoke(db_session, principal.actor(), patient_id, invitation_id)
        db_session.commit()
        return see_other(f"/console/patients/{patient_id}/portal?done=revoked")

    def _render(
        self,
        request: Request[Any, Any, Any],
        patient_id: uuid.UUID,
        principal: Principal,
        db_session: Session,
        state: State,
        **context: Any,
    ) -> Template:
        patient = access.read_visible_patient(
            db_session, state.keystore, principal, patient_id, "portal.invitation.read"
        )
        return page(
            request,
            "admin_invitations.html",
            principal,
            title=_("Portal access of %(name)s") % {"name": patient.name},
            patient=patient,
            has_account=invitations.has_portal_account(db_session, patient_id),
            invitations=invitations.list_for(db_session, patient_id),
            **context,
        )
