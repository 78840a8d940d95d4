"""AES-256-GCM envelope encryption.

Each patient has a data key (DEK); the DEK is stored only wrapped by the key-encryption key
(KEK), which lives in a file outside the database. Every ciphertext carries associated data
naming its table, column, row, patient and key version, so a ciphertext copied to another row
or another patient fails to decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.crypto.atomic import write_private_file
from appliance.settings import read_secret_file

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12


class DecryptionFailed(Exception):
    """Wrong key, wrong context or tampered ciphertext. Deliberately says nothing more."""


@dataclass(frozen=True)
class Kek:
    id: str
    key: bytes = b""

    def __repr__(self) -> str:  # never print key material
        return f"Kek(id={self.id!r})"


@dataclass(frozen=True)
class FieldContext:
    """Where a ciphertext belongs. Part of the GCM associated data."""

    table: str
    column: str
    row_id: uuid.UUID
    patient_id: uuid.UUID
    key_version: int = 1

    def associated_data(self) -> bytes:
        return "|".join(
            (
                "field",
                self.table,
                self.column,
                str(self.row_id),
                str(self.patient_id),
                str(self.key_version),
            )
        ).encode()


def generate_kek() -> Kek:
    return Kek(id=f"kek-{secrets.token_hex(8)}", key=AESGCM.generate_key(bit_length=256))


def write_kek_file(path: Path, kek: Kek) -> None:
    """Write a KEK file atomically with mode 0600; never overwrites an existing one."""
    payload = json.dumps({"id": kek.id, "key": base64.b64encode(kek.key).decode()}).encode()
    write_private_file(path, payload, replace=False)


def load_kek(path: Path) -> Kek:
    try:
        data = json.loads(read_secret_file(path))
        key = base64.b64decode(data["key"], validate=True)
        kek = Kek(id=str(data["id"]), key=key)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"key file {path} is not a valid key-encryption key") from exc
    if len(kek.key) != 32:
        raise ValueError(f"key file {path} does not hold a 256-bit key")
    return kek


def wrap_data_key(kek: Kek, dek: bytes, patient_id: uuid.UUID) -> bytes:
    return _seal(kek.key, dek, _wrap_context(kek, patient_id))


def unwrap_data_key(kek: Kek, wrapped: bytes, patient_id: uuid.UUID) -> bytes:
    return _open(kek.key, wrapped, _wrap_context(kek, patient_id))


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt_field(dek: bytes, plaintext: str, context: FieldContext) -> bytes:
    return _seal(dek, plaintext.encode("utf-8"), context.associated_data())


def decrypt_field(dek: bytes, ciphertext: bytes, context: FieldContext) -> str:
    return _open(dek, ciphertext, context.associated_data()).decode("utf-8")


def _wrap_context(kek: Kek, patient_id: uuid.UUID) -> bytes:
    return f"dek|{patient_id}|{kek.id}".encode()


def _seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def _open(key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != FORMAT_V1:
        raise DecryptionFailed("unrecognised ciphertext")
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, associated_data)
    except InvalidTag:
        raise DecryptionFailed("ciphertext does not match its key or context") from None
