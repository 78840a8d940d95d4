from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session

from appliance.clinic import service
from appliance.clinic.models import Patient
from appliance.clinic.schemas import PatientPublic
from appliance.crypto.envelope import (
    DecryptionFailed,
    FieldContext,
    Kek,
    decrypt_field,
    encrypt_field,
    generate_kek,
    load_kek,
    new_data_key,
    write_kek_file,
)

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


def test_a_tampered_ciphertext_or_another_key_fails() -> None:
    dek = new_data_key()
    blob = bytearray(encrypt_field(dek, "Bob Brennan", context()))
    blob[-1] ^= 1
    with pytest.raises(DecryptionFailed):
        decrypt_field(dek, bytes(blob), context())
    with pytest.raises(DecryptionFailed):
        decrypt_field(new_data_key(), encrypt_field(dek, "x", context()), context())


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


def test_patient_names_are_not_stored_in_clear(session: Session, bob: PatientPublic) -> None:
    rows = session.execute(text("SELECT name_enc, email_enc FROM patients")).all()
    dump = b"".join(bytes(column) for row in rows for column in row)
    assert b"Bob Brennan" not in dump
    assert b"bob@home.example" not in dump
    keys = session.execute(text("SELECT wrapped_key FROM data_keys")).scalars().all()
    assert len(keys) == 1


def test_a_ciphertext_copied_to_another_patient_does_not_decrypt(
    session: Session, kek: Kek, bob: PatientPublic, charlie: PatientPublic
) -> None:
    stolen = session.get(Patient, bob.id)
    target = session.get(Patient, charlie.id)
    assert stolen is not None
    assert target is not None
    target.name_enc = stolen.name_enc
    session.add(target)
    session.commit()
    with pytest.raises(DecryptionFailed):
        service.get_patient(session, kek, charlie.id)
    assert service.get_patient(session, kek, bob.id).name == "Bob Brennan"
