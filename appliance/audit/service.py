"""Writing, checkpointing and exporting the audit log.

Entries are written inside the transaction of the action they record, so an action and its
audit row commit together or not at all. A transaction-scoped advisory lock serialises writers,
so each entry links to the one committed before it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import Session, col, select

from appliance.audit.chain import GENESIS, entry_hash, entry_record, key_id, sign_checkpoint
from appliance.audit.models import AuditCheckpoint, AuditEvent
from appliance.crypto.atomic import write_private_file
from appliance.settings import read_secret_file

CHAIN_LOCK = 0x41554449  # "AUDI": pg_advisory_xact_lock key for the chain head
BUNDLE_FORMAT = "appliance-audit/1"

Outcome = Literal["success", "denied", "failure"]


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, or clinic IT at the shell (`cli`), or the system itself."""

    role: str
    user_id: uuid.UUID | None = None
    ip: str | None = None
    user_agent: str | None = None


def cli_actor() -> Actor:
    """Clinic IT at the server's shell: no appliance user, the OS account named instead."""
    import getpass

    from appliance import __version__

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(role="cli", user_agent=f"appliance-cli/{__version__} (os user {who})")


@dataclass(frozen=True)
class AuditEntry:
    action: str
    outcome: Outcome = "success"
    object_type: str | None = None
    object_id: str | None = None
    patient_id: uuid.UUID | None = None
    details: dict[str, Any] = field(default_factory=dict)  # ids and counts only


def record(session: Session, actor: Actor, entry: AuditEntry) -> AuditEvent:
    """Append one entry in the caller's transaction (committed with it)."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    # One round trip for the head and the next id: the lock is held until commit, so every
    # audited request waits behind it; this statement starts after the lock is taken and
    # reads committed rows with a fresh snapshot (READ COMMITTED), so the head is current.
    head, event_id = session.execute(
        text(
            "SELECT (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1),"
            " nextval(pg_get_serial_sequence('audit_events', 'id'))"
        )
    ).one()
    event = AuditEvent(
        id=event_id,
        ts=datetime.now(UTC),
        actor_id=actor.user_id,
        actor_role=actor.role,
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        patient_id=entry.patient_id,
        outcome=entry.outcome,
        ip=actor.ip,
        user_agent=(actor.user_agent or "")[:256] or None,
        details=entry.details,
        prev_hash=head or GENESIS,
        hash="",
    )
    event.hash = entry_hash(event.model_dump())
    session.add(event)
    session.flush()
    return event


def ensure_signing_key(path: Path) -> str:
    """Create the Ed25519 checkpoint key once (0600, separate from the KEK); return its id."""
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem, replace=False)
    return key_id(load_signing_key(path).public_key())


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(read_secret_file(path), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def checkpoint(session: Session, signing_key: Ed25519PrivateKey) -> AuditCheckpoint | None:
    """Sign the current head of the chain (None when the log is empty)."""
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK})
    head = session.exec(select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(1)).first()
    if head is None or head.id is None:
        return None
    created_at = datetime.now(UTC).isoformat()
    signer, signature = sign_checkpoint(signing_key, head.id, head.hash, created_at)
    mark = AuditCheckpoint(
        event_id=head.id,
        event_hash=head.hash,
        created_at=datetime.fromisoformat(created_at),
        key_id=signer,
        signature=signature,
    )
    session.add(mark)
    session.flush()
    return mark


def export_signed(
    session: Session, actor: Actor, signing_key: Ed25519PrivateKey, out: Path
) -> dict[str, int]:
    """An export as clinic IT makes it: the export itself is recorded, and the chain's head,
    that record included, is signed and committed first, so the bundle's tail is always
    covered and never holds an entry that did not commit."""
    record(session, actor, AuditEntry("audit.export"))
    checkpoint(session, signing_key)
    session.commit()
    return export_bundle(session, signing_key, out)


def chain_records(session: Session) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every entry (with its hash) and every signed checkpoint, in order, as a bundle holds
    them: what an export writes and what a restored backup is verified from."""
    entries = [
        {**entry_record(event.model_dump()), "hash": event.hash}
        for event in session.exec(select(AuditEvent).order_by(col(AuditEvent.id)))
    ]
    marks = [
        {
            "id": m.id,
            "event_id": m.event_id,
            "event_hash": m.event_hash,
            "created_at": m.created_at.astimezone(UTC).isoformat(),
            "key_id": m.key_id,
            "signature": m.signature,
        }
        for m in session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.id)))
    ]
    return entries, marks


def export_bundle(session: Session, signing_key: Ed25519PrivateKey, out: Path) -> dict[str, int]:
    """Write entries, checkpoints and the public key to `out` (atomically, 0600)."""
    import base64

    entries, marks = chain_records(session)
    public = signing_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    bundle = {
        "format": BUNDLE_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "public_keys": {key_id(public): base64.b64encode(raw).decode()},
        "entries": entries,
        "checkpoints": marks,
    }
    write_private_file(out, json.dumps(bundle, indent=1).encode(), replace=True)
    return {"entries": len(entries), "checkpoints": len(marks)}
