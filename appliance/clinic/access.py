"""Which patients a principal may see, decided in SQL.

A therapist sees the patients assigned to them, a patient only their own record, an admin
every patient; an auditor none (auditors read the audit log, not clinical data).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import false
from sqlmodel import Session, col, select

from appliance.audit.service import AuditEntry, record
from appliance.auth.guards import Principal
from appliance.clinic.models import Patient, Role, TherapistAssignment
from appliance.clinic.schemas import PatientPublic
from appliance.clinic.service import get_patient
from appliance.crypto.keystore import KeyStore
from appliance.errors import NotFound

# Who may touch clinical data at all (auditors read the audit log, not clinical data).
CLINICAL_ROLES = (Role.admin, Role.therapist, Role.patient)
STAFF = (Role.admin, Role.therapist)


def visible_patient_ids(principal: Principal) -> Any:
    query = select(Patient.id)
    if principal.role == Role.admin:
        return query
    if principal.role == Role.therapist:
        return query.join(
            TherapistAssignment, col(TherapistAssignment.patient_id) == col(Patient.id)
        ).where(TherapistAssignment.therapist_id == principal.user_id)
    if principal.role == Role.patient:
        return query.where(Patient.user_id == principal.user_id)
    return query.where(false())


def can_see(session: Session, principal: Principal, patient_id: uuid.UUID) -> bool:
    query = visible_patient_ids(principal).where(Patient.id == patient_id)
    return session.exec(query).first() is not None


def require_visible(
    session: Session, principal: Principal, patient_id: uuid.UUID, action: str
) -> None:
    """404 for a patient the principal may not see, exactly as for one that does not exist;
    the attempt is audited (and committed, though the request fails)."""
    if not can_see(session, principal, patient_id):
        record(
            session,
            principal.actor(),
            AuditEntry(action, "denied", "patient", str(patient_id), patient_id),
        )
        session.commit()
        raise NotFound("no such patient")


def read_visible_patient(
    session: Session, store: KeyStore, principal: Principal, patient_id: uuid.UUID, action: str
) -> PatientPublic:
    """The patient's decrypted record if the principal may see it (else 404, the attempt
    audited under `action`); the read itself is audited and committed."""
    require_visible(session, principal, patient_id, action)
    found = get_patient(session, store, principal.actor(), patient_id)
    session.commit()
    return found
