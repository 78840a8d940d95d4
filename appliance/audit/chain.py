"""The hash chain and checkpoint signatures, as pure functions: the database writes with them
and `appliance audit verify` checks an exported bundle with them, offline."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64
ENTRY_FIELDS = (
    "id",
    "ts",
    "actor_id",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "patient_id",
    "outcome",
    "ip",
    "user_agent",
    "details",
    "prev_hash",
)


def canonical(record: Mapping[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8, timestamps in UTC ISO 8601."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    ).encode("utf-8")


def _plain(value: Any) -> str:
    if isinstance(value, datetime):  # the server's time zone must not change the hash
        return value.astimezone(UTC).isoformat()
    return str(value)  # UUIDs


def entry_record(values: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an entry its hash covers, as JSON-ready values."""
    return json.loads(canonical({field: values.get(field) for field in ENTRY_FIELDS}))  # type: ignore[no-any-return]


def entry_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entry_record(record))).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_payload(event_id: int, event_hash: str, created_at: str, signer: str) -> bytes:
    return canonical(
        {"event_id": event_id, "event_hash": event_hash, "created_at": created_at, "key_id": signer}
    )


def sign_checkpoint(
    private_key: Ed25519PrivateKey, event_id: int, event_hash: str, created_at: str
) -> tuple[str, str]:
    signer = key_id(private_key.public_key())
    payload = checkpoint_payload(event_id, event_hash, created_at, signer)
    return signer, base64.b64encode(private_key.sign(payload)).decode()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    checkpoints: int
    first_bad_position: int | None = None  # 1-based position in the exported order
    reason: str = ""


def verify_bundle(bundle: Mapping[str, Any]) -> Verdict:
    """Check every entry's hash and link, and every checkpoint's signature and anchor."""
    entries: Sequence[Mapping[str, Any]] = bundle.get("entries", [])
    keys = {
        kid: Ed25519PublicKey.from_public_bytes(base64.b64decode(raw))
        for kid, raw in bundle.get("public_keys", {}).items()
    }
    previous, position_of = GENESIS, {}
    for position, entry in enumerate(entries, start=1):
        if entry.get("prev_hash") != previous:
            return _bad(
                entries,
                bundle,
                position,
                "does not link to the entry before it "
                "(an entry was removed, inserted or reordered)",
            )
        if entry_hash(entry) != entry.get("hash"):
            return _bad(entries, bundle, position, "its content does not match its hash (altered)")
        previous = str(entry["hash"])
        position_of[entry.get("id")] = (position, entry["hash"])
    checkpoints = bundle.get("checkpoints", [])
    for checkpoint in checkpoints:
        anchor = position_of.get(checkpoint.get("event_id"))
        key = keys.get(checkpoint.get("key_id"))
        if key is None:
            return _bad(
                entries, bundle, None, f"checkpoint {checkpoint.get('id')} names an unknown key"
            )
        payload = checkpoint_payload(
            checkpoint["event_id"],
            checkpoint["event_hash"],
            checkpoint["created_at"],
            checkpoint["key_id"],
        )
        try:
            key.verify(base64.b64decode(checkpoint["signature"]), payload)
        except (InvalidSignature, ValueError):
            return _bad(
                entries, bundle, None, f"checkpoint {checkpoint.get('id')} has a bad signature"
            )
        if anchor is None or anchor[1] != checkpoint["event_hash"]:
            position = anchor[0] if anchor else len(entries) + 1
            return _bad(
                entries,
                bundle,
                position,
                f"signed checkpoint {checkpoint.get('id')} does not match the chain "
                "(entries after it were removed or the chain was rewritten)",
            )
    return Verdict(True, len(entries), len(checkpoints))


def _bad(
    entries: Sequence[Any], bundle: Mapping[str, Any], position: int | None, why: str
) -> Verdict:
    where = f"position {position}: " if position is not None else ""
    return Verdict(False, len(entries), len(bundle.get("checkpoints", [])), position, where + why)
