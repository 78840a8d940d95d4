"""Console: the patients the signed-in staff member may see."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.response import Template
from sqlmodel import Session

from appliance.auth.guards import Principal
from appliance.clinic import access, service
from appliance.web.pages import PAGE_EXCEPTION_HANDLERS, page, provide_page_principal


class PatientPages(Controller):
    path = "/console/patients"
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS
    dependencies = {"principal": Provide(provide_page_principal)}

    @get("/", sync_to_thread=True)
    def patients(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        principal.require(*access.STAFF)
        found = service.list_patients(
            db_session, state.keystore, principal.actor(), access.visible_patient_ids(principal)
        )
        db_session.commit()
        return page(request, "patients.html", principal, title="Patients", patients=found)
