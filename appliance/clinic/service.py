"""Clinic domain services: plain functions taking a DB session. The caller owns the transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.models import Clinic, Patient, Role, TherapistAssignment, User
from appliance.clinic.passwords import hash_password
from appliance.clinic.schemas import (
    ClinicPublic,
    PatientCreate,
    PatientPublic,
    UserCreate,
    UserPublic,
)
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import PatientCipher, new_patient_cipher, patient_cipher
from appliance.errors import Conflict, Invalid, NotFound


def ensure_clinic(session: Session, name: str, timezone: str) -> ClinicPublic:
    """The appliance's clinic row, created on first use. Later settings do not rename it."""
    clinic = session.exec(select(Clinic).order_by(col(Clinic.created_at)).limit(1)).first()
    if clinic is None:
        clinic = Clinic(name=name, timezone=timezone)
        session.add(clinic)
        session.flush()
    return ClinicPublic.model_validate(clinic, from_attributes=True)


def get_clinic(session: Session) -> ClinicPublic:
    clinic = session.exec(select(Clinic).order_by(col(Clinic.created_at)).limit(1)).first()
    if clinic is None:
        raise NotFound("the appliance has no clinic yet; run appliance init")
    return ClinicPublic.model_validate(clinic, from_attributes=True)


def add_user(session: Session, actor: Actor, data: UserCreate) -> UserPublic:
    clinic = get_clinic(session)
    if find_user(session, data.email) is not None:
        raise Conflict("a user with this e-mail address already exists")
    user = User(
        clinic_id=clinic.id,
        email=data.email,
        name=data.name,
        role=data.role.value,
        password_hash=hash_password(data.password) if data.password else None,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # a concurrent insert won the race for the unique e-mail
        session.rollback()
        raise Conflict("a user with this e-mail address already exists") from None
    record(
        session,
        actor,
        AuditEntry(
            "user.create", object_type="user", object_id=str(user.id), details={"role": user.role}
        ),
    )
    return user_public(user)


def list_users(session: Session, role: Role | None = None) -> list[UserPublic]:
    query = select(User).order_by(col(User.created_at))
    if role is not None:
        query = query.where(User.role == role.value)
    return [user_public(user) for user in session.exec(query)]


def find_user(session: Session, email: str) -> User | None:
    """The account with this e-mail address (compared as stored: trimmed, lower case)."""
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def get_user_by_email(session: Session, email: str) -> UserPublic:
    user = find_user(session, email)
    if user is None:
        raise NotFound("no user with this e-mail address")
    return user_public(user)


def add_patient(
    session: Session, store: KeyStore, actor: Actor, data: PatientCreate
) -> PatientPublic:
    """Create a patient with encrypted identity fields and assign their therapist."""
    clinic = get_clinic(session)
    therapist = find_user(session, data.therapist_email)
    if therapist is None:
        raise NotFound("no therapist with this e-mail address")
    if therapist.role != Role.therapist or not therapist.is_active:
        raise Invalid("that user is not an active therapist")

    patient_id = uuid.uuid4()
    cipher = new_patient_cipher(store, patient_id)
    patient = Patient(
        id=patient_id,
        clinic_id=clinic.id,
        name_enc=cipher.seal("patients", "name_enc", patient_id, data.name),
        email_enc=(
            cipher.seal("patients", "email_enc", patient_id, data.email) if data.email else None
        ),
    )
    session.add(patient)
    session.flush()  # the patient row must exist before the assignment references it
    session.add(TherapistAssignment(patient_id=patient_id, therapist_id=therapist.id))
    session.flush()
    record(
        session,
        actor,
        AuditEntry(
            "patient.create",
            object_type="patient",
            object_id=str(patient_id),
            patient_id=patient_id,
            details={"therapist_id": str(therapist.id)},
        ),
    )
    return _patient_public(session, cipher, patient)


def link_portal_user(session: Session, actor: Actor, patient_id: uuid.UUID, email: str) -> None:
    """Give a patient record its portal account (a user with role patient)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    user = find_user(session, email)
    if user is None or user.role != Role.patient:
        raise Invalid("that e-mail does not belong to a user with role patient")
    taken = session.exec(select(Patient.id).where(Patient.user_id == user.id)).first()
    if taken is not None and taken != patient_id:
        raise Conflict("that account is already linked to another patient")
    patient.user_id = user.id
    session.add(patient)
    record(
        session,
        actor,
        AuditEntry(
            "patient.link_user",
            "success",
            "patient",
            str(patient_id),
            patient_id,
            details={"user_id": str(user.id)},
        ),
    )


def get_patient(
    session: Session, store: KeyStore, actor: Actor, patient_id: uuid.UUID
) -> PatientPublic:
    """Read a patient's record (decrypted). The read is audited; authorization is the
    caller's (see appliance.auth.guards)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("no such patient")
    found = _patient_public(session, patient_cipher(store, patient_id), patient)
    read = AuditEntry("patient.read", "success", "patient", str(patient_id), patient_id)
    record(session, actor, read)
    return found


def list_patients(
    session: Session, store: KeyStore, actor: Actor, visible: Any
) -> list[PatientPublic]:
    """The patients in `visible` (a SQL selectable of ids), decrypted, sorted by name; one
    audit entry for the listing."""
    rows = session.exec(select(Patient).where(col(Patient.id).in_(visible))).all()
    found = [_patient_public(session, patient_cipher(store, p.id), p) for p in rows]
    record(session, actor, AuditEntry("patient.list", details={"count": len(found)}))
    return sorted(found, key=lambda p: p.name.casefold())


def _patient_public(session: Session, cipher: PatientCipher, patient: Patient) -> PatientPublic:
    therapist_ids = session.exec(
        select(TherapistAssignment.therapist_id).where(TherapistAssignment.patient_id == patient.id)
    ).all()
    return PatientPublic(
        id=patient.id,
        name=cipher.open("patients", "name_enc", patient.id, patient.name_enc),
        email=(
            cipher.open("patients", "email_enc", patient.id, patient.email_enc)
            if patient.email_enc is not None
            else None
        ),
        therapist_ids=list(therapist_ids),
        created_at=patient.created_at,
    )


def user_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        name=user.name,
        role=Role(user.role),
        is_active=user.is_active,
        created_at=user.created_at,
    )
