"""Using the key store: per-patient field ciphers and KEK rotation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from appliance.crypto.atomic import fsync_dir
from appliance.crypto.envelope import (
    FieldContext,
    decrypt_field,
    encrypt_field,
    generate_kek,
    load_kek,
    write_kek_file,
)
from appliance.crypto.keystore import KeyStore
from appliance.settings import Settings


def keystore_for(settings: Settings) -> KeyStore:
    return KeyStore(keys_dir=settings.keys_dir, current_kek_path=settings.kek_path)


@dataclass(frozen=True)
class PatientCipher:
    """Seals and opens one patient's fields; every ciphertext is bound to its table, column,
    row and this patient."""

    patient_id: uuid.UUID
    dek: bytes
    key_version: int = 1

    def __repr__(self) -> str:  # never print key material
        return f"PatientCipher(patient_id={self.patient_id})"

    def seal(self, table: str, column: str, row_id: uuid.UUID, plaintext: str) -> bytes:
        return encrypt_field(self.dek, plaintext, self._context(table, column, row_id))

    def open(self, table: str, column: str, row_id: uuid.UUID, ciphertext: bytes) -> str:
        return decrypt_field(self.dek, ciphertext, self._context(table, column, row_id))

    def _context(self, table: str, column: str, row_id: uuid.UUID) -> FieldContext:
        return FieldContext(table, column, row_id, self.patient_id, self.key_version)


def new_patient_cipher(store: KeyStore, patient_id: uuid.UUID) -> PatientCipher:
    return PatientCipher(patient_id, store.create(patient_id))


def patient_cipher(store: KeyStore, patient_id: uuid.UUID) -> PatientCipher:
    return PatientCipher(patient_id, store.get(patient_id))


@dataclass(frozen=True)
class Rotation:
    old_kek_id: str
    new_kek_id: str
    rewrapped: int


def rotate_kek(store: KeyStore) -> Rotation:
    """New KEK; re-wrap every data key; retire the old KEK. Safe to interrupt and re-run:
    until the last step every key stays unwrappable by some KEK in the store, and a re-run
    finishes a rotation that an earlier run began."""
    old = store.current_kek()
    pending = sorted(store.keys_dir.glob("kek-*.key"))
    if pending:
        new = load_kek(pending[0])
        pending_path = pending[0]
    else:
        new = generate_kek()
        pending_path = store.keys_dir / f"{new.id}.key"
        write_kek_file(pending_path, new)
    rewrapped = 0
    for patient_id in store.patient_ids():
        store.rewrap(patient_id, new)
        rewrapped += 1
    retired = store.retired_dir / f"{old.id}.key"
    if not retired.exists():
        write_kek_file(retired, old)
    pending_path.replace(store.current_kek_path)
    fsync_dir(store.keys_dir)
    return Rotation(old_kek_id=old.id, new_kek_id=new.id, rewrapped=rewrapped)


def purge_retired(store: KeyStore) -> list[str]:
    """Destroy retired KEKs that no patient key still depends on. After this, key-store
    backups older than the last rotation can no longer be unwrapped: that is the point."""
    in_use = store.wrapped_by()
    purged = []
    for path in sorted(store.retired_dir.glob("kek-*.key")) if store.retired_dir.is_dir() else []:
        kek_id = path.stem
        if kek_id in in_use:
            continue
        path.unlink()
        purged.append(kek_id)
    if purged:
        fsync_dir(store.retired_dir)
    return purged
