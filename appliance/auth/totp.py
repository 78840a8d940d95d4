"""TOTP second factor (RFC 6238) from `cryptography`; each code is accepted once."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
import uuid

import segno
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from appliance.crypto.envelope import FieldContext, decrypt_field, encrypt_field

STEP = 30
DIGITS = 6


def new_secret() -> bytes:
    return os.urandom(20)


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, DIGITS, SHA1(), STEP, enforce_key_length=False)  # noqa: S303 (RFC 6238 default)


def provisioning_uri(secret: bytes, email: str, issuer: str) -> str:
    return _totp(secret).get_provisioning_uri(email, issuer)


def code_for(secret: bytes, at: float | None = None) -> str:
    return _totp(secret).generate(int(at if at is not None else time.time())).decode()


def accept(secret: bytes, code: str, last_step: int | None, now: float | None = None) -> int | None:
    """The time step the code belongs to (one step of clock drift either way), or None.
    A step at or before `last_step` was used already: replaying a code fails."""
    now = time.time() if now is None else now
    if not (code.isdigit() and len(code) == DIGITS):
        return None
    current = int(now) // STEP
    for step in (current, current - 1, current + 1):
        if last_step is not None and step <= last_step:
            continue
        try:
            _totp(secret).verify(code.encode(), step * STEP)
        except InvalidToken:
            continue
        return step
    return None


def seal_secret(server_secret: bytes, user_id: uuid.UUID, secret: bytes) -> bytes:
    """TOTP secrets are staff data, not patient data: sealed with a key derived from the
    appliance's session secret (so KEK rotation does not touch them)."""
    text = base64.b32encode(secret).decode()
    return encrypt_field(_key(server_secret), text, _context(user_id))


def open_secret(server_secret: bytes, user_id: uuid.UUID, sealed: bytes) -> bytes:
    return base64.b32decode(decrypt_field(_key(server_secret), sealed, _context(user_id)))


def _key(server_secret: bytes) -> bytes:
    return hashlib.sha256(b"appliance-totp-v1|" + server_secret).digest()


def _context(user_id: uuid.UUID) -> FieldContext:
    return FieldContext("users", "totp_secret_enc", user_id, user_id)


def grouped(secret: str) -> str:
    """The base32 key in groups of four, as people read and type it (apps ignore spaces)."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as a QR code: an SVG drawn here on the server (segno, no network),
    in a data: URI for an <img> (the CSP allows img-src data:; no inline style needed)."""
    code = segno.make(uri, error="m")
    svg = io.BytesIO()
    code.save(svg, kind="svg", scale=5, border=4, dark="#000", light="#fff", xmldecl=False)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode()
