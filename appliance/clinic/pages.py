"""Console: the patients the signed-in staff member may see."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Template
from sqlmodel import Session

from appliance.auth.guards import Principal
from appliance.auth.pages import TOTP_ON
from appliance.clinic import access, service
from appliance.web.pages import PageController, page


class PatientPages(PageController):
    path = "/console/patients"

    @get("/", sync_to_thread=True)
    def patients(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(*access.STAFF)
        found = service.list_patients(
            db_session, state.keystore, principal.actor(), access.visible_patient_ids(principal)
        )
        db_session.commit()
        return page(
            request,
            "patients.html",
            principal,
            title="Patients",
            patients=found,
            notice=TOTP_ON if done == "totp" else None,  # after the authenticator is on
        )
