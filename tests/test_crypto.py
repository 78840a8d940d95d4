"""Encryption at rest: fields bound to their place, a key store outside the database,
rotation that keeps data readable, and erasure that leaves nothing decryptable."""

from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from appliance.clinic import service
from appliance.clinic.erasure import erase_patient
from appliance.clinic.models import Patient
from appliance.clinic.schemas import PatientPublic
from appliance.crypto.envelope import (
    DecryptionFailed,
    FieldContext,
    decrypt_field,
    encrypt_field,
    generate_kek,
    load_kek,
    new_data_key,
    unwrap_data_key,
    write_kek_file,
)
from appliance.crypto.keystore import KeyMissing, KeyStore
from appliance.crypto.service import PatientCipher, patient_cipher, purge_retired, rotate_kek
from appliance.crypto.streams import FileContext, encrypt_to_file
from appliance.errors import NotFound
from appliance.settings import Settings
from tests.conftest import CLINIC_IT

ROW, PATIENT = uuid.uuid4(), uuid.uuid4()


def context(**changes: object) -> FieldContext:
    fields: dict[str, object] = {
        "table": "patients",
        "column": "name_enc",
        "row_id": ROW,
        "patient_id": PATIENT,
    }
    fields.update(changes)
    return FieldContext(**fields)  # type: ignore[arg-type]


def test_a_field_decrypts_only_in_its_own_context() -> None:
    dek = new_data_key()
    blob = encrypt_field(dek, "Bob Brennan", context())
    assert decrypt_field(dek, blob, context()) == "Bob Brennan"
    for wrong in (
        context(row_id=uuid.uuid4()),
        context(patient_id=uuid.uuid4()),
        context(column="email_enc"),
        context(table="users"),
        context(key_version=2),
    ):
        with pytest.raises(DecryptionFailed):
            decrypt_field(dek, blob, wrong)


def test_the_kek_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "kek.key"
    kek = generate_kek()
    write_kek_file(path, kek)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_kek(path) == kek
    with pytest.raises(FileExistsError):
        write_kek_file(path, generate_kek())
    assert load_kek(path) == kek
    assert "key=" not in repr(kek)


def test_patient_fields_and_keys_are_not_in_the_database_in_clear(
    session: Session, store: KeyStore, bob: PatientPublic
) -> None:
    dump = b"".join(
        bytes(value)
        for row in session.execute(text("SELECT name_enc, email_enc FROM patients"))
        for value in row
    )
    assert b"Bob Brennan" not in dump
    assert b"bob@home.example" not in dump
    key_file = store.patients_dir / f"{bob.id}.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(key_file.read_text())["kek_id"] == store.current_kek().id


def test_flipping_one_byte_of_a_stored_ciphertext_is_an_error_not_garbage(
    session: Session, store: KeyStore, bob: PatientPublic
) -> None:
    row = session.get(Patient, bob.id)
    assert row is not None
    flipped = bytearray(row.name_enc)
    flipped[20] ^= 0x01
    row.name_enc = bytes(flipped)
    session.add(row)
    session.commit()
    with pytest.raises(DecryptionFailed):
        service.get_patient(session, store, CLINIC_IT, bob.id)


def test_swapping_two_patients_ciphertexts_is_an_error(
    session: Session, store: KeyStore, bob: PatientPublic, charlie: PatientPublic
) -> None:
    bob_row, charlie_row = session.get(Patient, bob.id), session.get(Patient, charlie.id)
    assert bob_row is not None
    assert charlie_row is not None
    bob_row.name_enc, charlie_row.name_enc = charlie_row.name_enc, bob_row.name_enc
    session.add_all([bob_row, charlie_row])
    session.commit()
    for patient in (bob, charlie):
        with pytest.raises(DecryptionFailed):
            service.get_patient(session, store, CLINIC_IT, patient.id)


def test_rotation_rewraps_every_key_and_keeps_data_readable(
    session: Session, store: KeyStore, bob: PatientPublic, charlie: PatientPublic
) -> None:
    before = store.current_kek()
    rotation = rotate_kek(store)
    assert rotation.old_kek_id == before.id
    assert rotation.rewrapped == 2
    assert store.current_kek().id == rotation.new_kek_id != before.id
    assert store.wrapped_by() == {rotation.new_kek_id}
    assert (store.retired_dir / f"{before.id}.key").is_file()
    assert service.get_patient(session, store, CLINIC_IT, bob.id).name == "Bob Brennan"
    assert service.get_patient(session, store, CLINIC_IT, charlie.id).name == "Charlie Castellanos"


def test_purging_retired_keks_keeps_current_data_readable(
    session: Session, store: KeyStore, bob: PatientPublic
) -> None:
    first = rotate_kek(store)
    assert purge_retired(store) == [first.old_kek_id]
    assert list(store.retired_dir.glob("*.key")) == []
    assert service.get_patient(session, store, CLINIC_IT, bob.id).name == "Bob Brennan"


def test_an_interrupted_rotation_stays_readable_and_a_rerun_finishes_it(
    session: Session, store: KeyStore, bob: PatientPublic, charlie: PatientPublic
) -> None:
    new = generate_kek()
    write_kek_file(store.keys_dir / f"{new.id}.key", new)  # rotation began ...
    store.rewrap(bob.id, new)  # ... and crashed after one patient
    assert store.wrapped_by() == {new.id, store.current_kek().id}
    assert service.get_patient(session, store, CLINIC_IT, bob.id).name == "Bob Brennan"
    assert service.get_patient(session, store, CLINIC_IT, charlie.id).name == "Charlie Castellanos"
    assert rotate_kek(store).new_kek_id == new.id
    assert store.wrapped_by() == {new.id}
    assert list(store.keys_dir.glob("kek-*.key")) == []


def test_erasure_leaves_nothing_decryptable_even_from_a_dump_taken_before(
    session: Session,
    store: KeyStore,
    settings: Settings,
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    dump = session.execute(
        text("SELECT name_enc FROM patients WHERE id = :id"), {"id": bob.id}
    ).scalar_one()
    recording = settings.files_dir / str(bob.id) / "session-1.rec"
    cipher = patient_cipher(store, bob.id)
    encrypt_to_file(cipher.dek, [b"audio"], recording, FileContext("recording", ROW, bob.id))

    result = erase_patient(session, store, CLINIC_IT, settings.files_dir, bob.id)
    session.commit()

    assert (result.key_destroyed, result.rows_deleted, result.files_deleted) == (True, True, 1)
    assert not recording.parent.exists()
    with pytest.raises(KeyMissing):
        store.get(bob.id)
    # Everything left on the box (every KEK, every remaining key file) cannot open the dump.
    for kek in store.keks().values():
        for path in store.patients_dir.glob("*.json"):
            wrapped = base64.b64decode(json.loads(path.read_text())["wrapped"])
            with pytest.raises(DecryptionFailed):
                PatientCipher(bob.id, unwrap_data_key(kek, wrapped, bob.id)).open(
                    "patients", "name_enc", bob.id, dump
                )
    assert service.get_patient(session, store, CLINIC_IT, charlie.id).name == "Charlie Castellanos"
    with pytest.raises(NotFound):
        erase_patient(session, store, CLINIC_IT, settings.files_dir, bob.id)
