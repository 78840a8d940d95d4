"""Consent over HTTP. Staff record consent given in person or on paper; patients give and
withdraw their own through the portal. Withdrawing takes exactly the steps granting does."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery, JSONBody
from sqlmodel import Session

from appliance.auth.guards import Principal, provide_principal
from appliance.clinic import access
from appliance.clinic.models import Role
from appliance.consent import service
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.consent.schemas import ConsentCheck, ConsentEventPublic, ConsentRequest, ConsentState


class ConsentController(Controller):
    path = "/api/v1/consent"
    tags = ["consent"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @post("/", sync_to_thread=True)
    def grant(
        self,
        data: JSONBody[ConsentRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> list[ConsentEventPublic]:
        """Record consent for one or more purposes (one immutable row each)."""
        return _change(db_session, principal, data, ConsentStatus.granted)

    @delete("/", status_code=200, sync_to_thread=True)
    def revoke(
        self,
        data: JSONBody[ConsentRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> list[ConsentEventPublic]:
        """Withdraw consent; it takes effect for the very next request."""
        return _change(db_session, principal, data, ConsentStatus.revoked)

    @get("/{patient_id:uuid}/check", sync_to_thread=True)
    def check(
        self,
        patient_id: FromPath[uuid.UUID],
        purpose: FromQuery[Purpose],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> ConsentCheck:
        _readable(db_session, principal, patient_id)
        granted = service.is_granted(db_session, patient_id, purpose)
        return ConsentCheck(patient_id=patient_id, purpose=purpose, granted=granted)

    @get("/{patient_id:uuid}/active", sync_to_thread=True)
    def active(
        self,
        patient_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> list[ConsentState]:
        _readable(db_session, principal, patient_id)
        return service.current(db_session, patient_id)

    @get("/{patient_id:uuid}/audit", sync_to_thread=True)
    def history(
        self,
        patient_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> list[ConsentEventPublic]:
        _readable(db_session, principal, patient_id)
        return service.history(db_session, patient_id)


def _readable(session: Session, principal: Principal, patient_id: uuid.UUID) -> None:
    principal.require(*access.CLINICAL_ROLES)
    access.require_visible(session, principal, patient_id, "consent.read")


def _change(
    session: Session, principal: Principal, data: ConsentRequest, status: ConsentStatus
) -> list[ConsentEventPublic]:
    principal.require(*access.CLINICAL_ROLES)
    access.require_visible(session, principal, data.patient_id, f"consent.{status.value}")
    method = data.method
    if principal.role == Role.patient:
        method = ConsentMethod.portal  # a patient acting for themself, in the portal
    elif method == ConsentMethod.portal:
        raise PermissionDeniedException("staff record consent given in person or on paper")
    rows = service.change(
        session, principal.actor(), data.patient_id, list(data.purposes), status, method
    )
    session.commit()
    return rows
