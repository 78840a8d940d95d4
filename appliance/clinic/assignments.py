"""Which therapists care for a patient: assign and unassign (administrators; the caller checks
the role and commits). Authorization everywhere joins through these rows, so each change is
audited with the patient and the therapist's ids."""

from __future__ import annotations

import uuid

from sqlmodel import Session, func, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.models import Patient, Role, TherapistAssignment, User
from appliance.errors import Conflict, Invalid, NotFound


def assign(session: Session, actor: Actor, patient_id: uuid.UUID, therapist_id: uuid.UUID) -> bool:
    """Give the patient this therapist too; False if they already had them."""
    _patient(session, patient_id)
    therapist = session.get(User, therapist_id)
    if therapist is None or therapist.role != Role.therapist or not therapist.is_active:
        raise Invalid("that user is not an active therapist")
    if session.get(TherapistAssignment, (patient_id, therapist_id)) is not None:
        return False
    session.add(TherapistAssignment(patient_id=patient_id, therapist_id=therapist_id))
    _audit(session, actor, "patient.assign", patient_id, therapist_id)
    session.flush()
    return True


def unassign(
    session: Session, actor: Actor, patient_id: uuid.UUID, therapist_id: uuid.UUID
) -> None:
    """Take the therapist off the patient. The last one stays: a patient nobody is assigned
    to is a patient no therapist can see (assign the new one first, then remove the old)."""
    _patient(session, patient_id)
    row = session.get(TherapistAssignment, (patient_id, therapist_id), with_for_update=True)
    if row is None:
        raise NotFound("that therapist is not assigned to this patient")
    others = session.exec(
        select(func.count())
        .select_from(TherapistAssignment)
        .where(
            TherapistAssignment.patient_id == patient_id,
            TherapistAssignment.therapist_id != therapist_id,
        )
    ).one()
    if others == 0:
        raise Conflict("a patient keeps at least one therapist; assign another one first")
    session.delete(row)
    _audit(session, actor, "patient.unassign", patient_id, therapist_id)
    session.flush()


def _patient(session: Session, patient_id: uuid.UUID) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    return patient


def _audit(
    session: Session, actor: Actor, action: str, patient_id: uuid.UUID, therapist_id: uuid.UUID
) -> None:
    record(
        session,
        actor,
        AuditEntry(
            action,
            object_type="patient",
            object_id=str(patient_id),
            patient_id=patient_id,
            details={"therapist_id": str(therapist_id)},
        ),
    )
