"""Patient records over HTTP. Reads are authorized in SQL and audited; a record the caller
may not see is a 404, exactly like one that does not exist, and the attempt is audited."""

from __future__ import annotations

import uuid

from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from sqlmodel import Session

from appliance.audit.service import AuditEntry, record
from appliance.auth.guards import Principal, provide_principal
from appliance.clinic import access
from appliance.clinic.schemas import PatientPublic


class PatientController(Controller):
    path = "/api/v1/patients"
    tags = ["patients"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def list_patients(
        self, principal: NamedDependency[Principal], db_session: NamedDependency[Session]
    ) -> list[uuid.UUID]:
        """Ids of the patients the caller may see (names only in the single-patient read)."""
        principal.require(*access.CLINICAL_ROLES)
        ids = list(db_session.exec(access.visible_patient_ids(principal)))
        record(
            db_session, principal.actor(), AuditEntry("patient.list", details={"count": len(ids)})
        )
        db_session.commit()
        return ids

    @get("/{patient_id:uuid}", sync_to_thread=True)
    def get_patient(
        self,
        patient_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> PatientPublic:
        principal.require(*access.CLINICAL_ROLES)
        return access.read_visible_patient(
            db_session, state.keystore, principal, patient_id, "patient.read"
        )
