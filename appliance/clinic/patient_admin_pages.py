"""Console administration of patients: add a patient with their therapist, assign and
unassign therapists. Administrators only; the services are appliance.clinic.service and
appliance.clinic.assignments. Patient names appear on the page, never in a URL."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from pydantic import ValidationError
from sqlmodel import Field, Session, SQLModel, col, select

from appliance.auth.guards import Principal
from appliance.clinic import access, assignments, service, staff
from appliance.clinic.models import Role, User
from appliance.clinic.schemas import PatientCreate
from appliance.errors import DomainError, Invalid, describe_validation_error
from appliance.web.i18n import _, lazy_gettext
from appliance.web.pages import PageController, page, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
NOTICES = {
    "added": lazy_gettext("The patient was added."),
    "assigned": lazy_gettext("The therapist was assigned."),
    "unassigned": lazy_gettext("The therapist was unassigned."),
}


class PatientForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    name: str = Field(default="", max_length=1000)
    email: str = Field(default="", max_length=1000)
    therapist_id: str = Field(default="", max_length=64)


class TherapistForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    therapist_id: str = Field(default="", max_length=64)


class PatientAdminPages(PageController):
    path = "/console/admin/patients"

    @get("/", sync_to_thread=True)
    def patients(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        return self._render(request, principal, db_session, state, notice=NOTICES.get(done or ""))

    @post("/", sync_to_thread=True)
    def add(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[PatientForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.admin)
        typed = {"name": data.name, "email": data.email, "therapist_id": data.therapist_id}
        try:
            therapist = _therapist(db_session, data.therapist_id)
            created = PatientCreate(
                name=data.name, email=data.email or None, therapist_email=therapist.email
            )
            service.add_patient(db_session, state.keystore, principal.actor(), created)
        except (ValidationError, DomainError) as refused:
            db_session.rollback()
            return self._render(
                request,
                principal,
                db_session,
                state,
                status_code=getattr(refused, "status_code", 422),
                error=_refusal(refused),
                typed=typed,
            )
        db_session.commit()
        return see_other("/console/admin/patients?done=added")

    @post("/{patient_id:uuid}/therapists", sync_to_thread=True)
    def assign(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        data: Annotated[TherapistForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.admin)
        try:
            therapist = _therapist(db_session, data.therapist_id)
            assignments.assign(db_session, principal.actor(), patient_id, therapist.id)
        except DomainError as refused:
            db_session.rollback()
            return self._refused(request, principal, db_session, state, refused)
        db_session.commit()
        return see_other("/console/admin/patients?done=assigned")

    @post("/{patient_id:uuid}/therapists/{therapist_id:uuid}/remove", sync_to_thread=True)
    def unassign(
        self,
        request: Request[Any, Any, Any],
        patient_id: FromPath[uuid.UUID],
        therapist_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.admin)
        try:
            assignments.unassign(db_session, principal.actor(), patient_id, therapist_id)
        except DomainError as refused:
            db_session.rollback()
            return self._refused(request, principal, db_session, state, refused)
        db_session.commit()
        return see_other("/console/admin/patients?done=unassigned")

    def _refused(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: Session,
        state: State,
        refused: DomainError,
    ) -> Template:
        return self._render(
            request,
            principal,
            db_session,
            state,
            status_code=refused.status_code,
            error=_refusal(refused),
        )

    def _render(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: Session,
        state: State,
        **context: Any,
    ) -> Template:
        found = service.list_patients(
            db_session, state.keystore, principal.actor(), access.visible_patient_ids(principal)
        )
        db_session.commit()  # the listing's audit entry
        therapists = staff.active_therapists(db_session)
        names = {u.id: u.name for u in db_session.exec(_staff_names())}
        return page(
            request,
            "admin_patients.html",
            principal,
            title=_("Patients and therapists"),
            patients=found,
            therapists=therapists,
            names=names,
            **context,
        )


def _staff_names() -> Any:
    return select(User).where(col(User.role) == Role.therapist.value)


def _therapist(db_session: Session, therapist_id: str) -> User:
    try:
        found = db_session.get(User, uuid.UUID(therapist_id))
    except ValueError:
        found = None
    if found is None or found.role != Role.therapist or not found.is_active:
        raise Invalid("choose an active therapist")
    return found


def _refusal(refused: Exception) -> str:
    if isinstance(refused, ValidationError):
        return describe_validation_error(refused, _("Please check the form"))
    return _(str(refused))
