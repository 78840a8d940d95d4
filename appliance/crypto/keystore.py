"""Key-encryption keys and per-patient data keys, on disk beside each other, never in PostgreSQL.

Why not in the database: crypto-shredding must hold against a database dump taken *before* the
erasure. A wrapped data key inside that dump plus the KEK would recover everything; a data key
that only ever lived in this key store is gone once its file is destroyed.

Layout under `keys/`:
  kek.key                  the current KEK (mode 0600)
  kek-<id>.key             a KEK being rotated in (exists only during `keys rotate`)
  retired/kek-<id>.key     KEKs retired by rotation: kept so that older backups of the key store
                           stay restorable; `keys purge-retired` destroys them
  patients/<uuid>.json     one patient's data key, wrapped by a KEK named inside the file
"""

from __future__ import annotations

import json
import uuid
from base64 import b64decode, b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.crypto.atomic import fsync_dir, write_private_file
from appliance.crypto.envelope import (
    Kek,
    load_kek,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)


class KeyMissing(Exception):
    """The key needed is not in the key store (never made, or destroyed by erasure)."""


@dataclass(frozen=True)
class KeyStore:
    keys_dir: Path
    current_kek_path: Path

    @property
    def patients_dir(self) -> Path:
        return self.keys_dir / "patients"

    @property
    def retired_dir(self) -> Path:
        return self.keys_dir / "retired"

    # KEKs ----------------------------------------------------------------------------------

    def current_kek(self) -> Kek:
        return load_kek(self.current_kek_path)

    def keks(self) -> dict[str, Kek]:
        """Every KEK this store can use to unwrap: current, being rotated in, retired."""
        paths = [self.current_kek_path, *self.keys_dir.glob("kek-*.key")]
        if self.retired_dir.is_dir():
            paths += self.retired_dir.glob("kek-*.key")
        found = {}
        for path in paths:
            if path.is_file():
                kek = load_kek(path)
                found[kek.id] = kek
        return found

    # Patient data keys ---------------------------------------------------------------------

    def _patient_path(self, patient_id: uuid.UUID) -> Path:
        return self.patients_dir / f"{uuid.UUID(str(patient_id))}.json"

    def create(self, patient_id: uuid.UUID) -> bytes:
        """Make and store a patient's data key. Written before the caller's DB commit: a failed
        commit leaves an unused key file, never a patient row without a key."""
        dek = new_data_key()
        self._write(patient_id, dek, self.current_kek(), replace=False)
        return dek

    def get(self, patient_id: uuid.UUID) -> bytes:
        path = self._patient_path(patient_id)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise KeyMissing("this patient has no data key (erased or never created)") from None
        kek = self.keks().get(record["kek_id"])
        if kek is None:
            raise KeyMissing(f"the data key is wrapped by {record['kek_id']}, which is not here")
        return unwrap_data_key(kek, b64decode(record["wrapped"]), patient_id)

    def destroy(self, patient_id: uuid.UUID) -> bool:
        """Crypto-shred: remove the only copy of the patient's data key."""
        path = self._patient_path(patient_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        return True

    def patient_ids(self) -> Iterator[uuid.UUID]:
        if self.patients_dir.is_dir():
            for path in sorted(self.patients_dir.glob("*.json")):
                yield uuid.UUID(path.stem)

    def wrapped_by(self) -> set[str]:
        return {
            json.loads(self._patient_path(pid).read_bytes())["kek_id"] for pid in self.patient_ids()
        }

    def rewrap(self, patient_id: uuid.UUID, new_kek: Kek) -> None:
        self._write(patient_id, self.get(patient_id), new_kek, replace=True)

    def _write(self, patient_id: uuid.UUID, dek: bytes, kek: Kek, *, replace: bool) -> None:
        record = {
            "patient_id": str(patient_id),
            "kek_id": kek.id,
            "wrapped": b64encode(wrap_data_key(kek, dek, patient_id)).decode(),
        }
        write_private_file(
            self._patient_path(patient_id), json.dumps(record).encode(), replace=replace
        )
