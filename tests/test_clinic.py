from __future__ import annotations

import pytest
from sqlmodel import Session, select

from appliance.clinic import service
from appliance.clinic.models import Patient, Role, User
from appliance.clinic.passwords import hash_password, verify_password
from appliance.clinic.schemas import PatientCreate, PatientPublic, UserCreate, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.errors import Conflict, Invalid, NotFound
from tests.conftest import CLINIC_IT


def test_passwords_are_hashed_with_argon2id_and_verified() -> None:
    encoded = hash_password("correct horse battery staple")
    assert encoded.startswith("$argon2id$")
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapler", encoded)
    assert not verify_password("anything", "not a hash")


def test_a_user_is_added_with_a_normalised_email_and_hashed_password(session: Session) -> None:
    user = service.add_user(
        session,
        CLINIC_IT,
        UserCreate(
            email=" Dana@Clinic.Example ",
            name="Dana",
            role=Role.admin,
            password="a long enough passphrase",
        ),
    )
    session.commit()
    assert user.email == "dana@clinic.example"
    row = session.get(User, user.id)
    assert row is not None
    assert row.password_hash is not None
    assert verify_password("a long enough passphrase", row.password_hash)


def test_the_same_email_cannot_be_added_twice(session: Session, alice: UserPublic) -> None:
    with pytest.raises(Conflict):
        service.add_user(
            session, CLINIC_IT, UserCreate(email="ALICE@clinic.example", name="A", role=Role.admin)
        )


def test_a_patient_gets_a_therapist_and_reads_back_decrypted(
    session: Session, store: KeyStore, alice: UserPublic, bob: PatientPublic
) -> None:
    found = service.get_patient(session, store, CLINIC_IT, bob.id)
    assert found.name == "Bob Brennan"
    assert found.email == "bob@home.example"
    assert found.therapist_ids == [alice.id]


def test_only_an_active_therapist_can_be_assigned(
    session: Session, store: KeyStore, adam: UserPublic
) -> None:
    with pytest.raises(Invalid):
        service.add_patient(
            session, store, CLINIC_IT, PatientCreate(name="Eve", therapist_email=adam.email)
        )
    with pytest.raises(NotFound):
        service.add_patient(
            session, store, CLINIC_IT, PatientCreate(name="Eve", therapist_email="ghost@x.example")
        )
    session.rollback()
    assert session.exec(select(Patient)).all() == []


def test_users_are_listed_by_role(
    session: Session, alice: UserPublic, adam: UserPublic, audrey: UserPublic
) -> None:
    assert [u.email for u in service.list_users(session, Role.auditor)] == [audrey.email]
    assert len(service.list_users(session)) == 3
