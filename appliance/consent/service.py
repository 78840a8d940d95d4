"""Granting, revoking and checking consent. Checks are SQL expressions, so every later query
(uploads, job runs, retrieval) can enforce consent at the moment of use, in the same statement."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, literal, select
from sqlmodel import Session, col

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.models import Patient
from appliance.consent.models import ConsentEvent, ConsentMethod, ConsentStatus, Purpose
from appliance.consent.schemas import ConsentEventPublic, ConsentState
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import FileContext, encrypt_to_file
from appliance.errors import DomainError, NotFound


class ConsentMissing(DomainError):
    status_code = 403
    title = "Forbidden"


def latest_status(patient_id: Any, purpose: Purpose) -> Any:
    """Scalar subquery: the latest status of `purpose` for `patient_id` (a value or a column)."""
    return (
        select(col(ConsentEvent.status))
        .where(
            col(ConsentEvent.patient_id) == patient_id,
            col(ConsentEvent.purpose) == purpose.value,
        )
        .order_by(col(ConsentEvent.id).desc())
        .limit(1)
        .scalar_subquery()
    )


def granted_clause(patient_id: Any, purpose: Purpose) -> ColumnElement[bool]:
    """True in SQL when the latest row for this patient and purpose is a grant."""
    return cast(
        "ColumnElement[bool]",
        latest_status(patient_id, purpose) == literal(ConsentStatus.granted.value),
    )


def is_granted(session: Session, patient_id: uuid.UUID, purpose: Purpose) -> bool:
    return bool(session.execute(select(granted_clause(patient_id, purpose))).scalar())


def require(session: Session, actor: Actor, patient_id: uuid.UUID, purpose: Purpose) -> None:
    """Refuse (403, audited) when consent for `purpose` is not currently granted."""
    if not is_granted(session, patient_id, purpose):
        record(
            session,
            actor,
            AuditEntry(
                "consent.enforce",
                "denied",
                "patient",
                str(patient_id),
                patient_id,
                details={"purpose": purpose.value},
            ),
        )
        session.commit()
        raise ConsentMissing(f"the patient has not consented to {purpose.value}")


def change(
    session: Session,
    actor: Actor,
    patient_id: uuid.UUID,
    purposes: list[Purpose],
    status: ConsentStatus,
    method: ConsentMethod,
    *,
    evidence: Path | None = None,
    store: KeyStore | None = None,
    files_root: Path | None = None,
) -> list[ConsentEventPublic]:
    """Append one row per purpose (never an UPDATE); the caller commits."""
    if session.get(Patient, patient_id) is None:
        raise NotFound("no such patient")
    evidence_sha = None
    if evidence is not None:
        if store is None or files_root is None:
            raise ValueError("evidence needs the key store and the files folder")
        evidence_sha = _store_evidence(store, files_root, patient_id, evidence)
    from appliance.jobs import service as jobs  # jobs depend on consent, not the reverse

    cancelled = resumed = 0
    if status == ConsentStatus.revoked:
        # Waits for stages committing output under the old consent, then cancels what waits.
        jobs.lock_consent(session, patient_id, exclusive=True)
        cancelled = jobs.cancel_waiting(session, patient_id, purposes)
    else:  # what stopped for want of this consent goes on (e.g. indexing for patient chat)
        resumed = jobs.resume_after_grant(session, patient_id, purposes)
    rows = []
    for purpose in dict.fromkeys(purposes):  # de-duplicated, order kept
        row = ConsentEvent(
            patient_id=patient_id,
            purpose=purpose.value,
            status=status.value,
            method=method.value,
            actor_id=actor.user_id,
            actor_role=actor.role,
            evidence_sha256=evidence_sha,
            ip=actor.ip,
            user_agent=(actor.user_agent or "")[:256] or None,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    action = "consent.grant" if status == ConsentStatus.granted else "consent.revoke"
    record(
        session,
        actor,
        AuditEntry(
            action,
            object_type="patient",
            object_id=str(patient_id),
            patient_id=patient_id,
            details={
                "purposes": [p.value for p in purposes],
                "method": method.value,
                "evidence": evidence_sha is not None,
                **({"jobs_cancelled": cancelled} if cancelled else {}),
                **({"jobs_resumed": resumed} if resumed else {}),
            },
        ),
    )
    return [ConsentEventPublic.model_validate(row, from_attributes=True) for row in rows]


def current(session: Session, patient_id: uuid.UUID) -> list[ConsentState]:
    """Every known purpose with its current state (`none` when never asked)."""
    latest: dict[str, ConsentEvent] = {}
    query = (
        select(ConsentEvent)
        .where(col(ConsentEvent.patient_id) == patient_id)
        .order_by(col(ConsentEvent.id))
    )
    for row in session.execute(query).scalars():
        latest[row.purpose] = row
    return [
        ConsentState(
            purpose=purpose,
            status=latest[purpose.value].status if purpose.value in latest else "none",
            since=latest[purpose.value].created_at if purpose.value in latest else None,
            method=latest[purpose.value].method if purpose.value in latest else None,
        )
        for purpose in Purpose
    ]


def history(session: Session, patient_id: uuid.UUID) -> list[ConsentEventPublic]:
    query = (
        select(ConsentEvent)
        .where(col(ConsentEvent.patient_id) == patient_id)
        .order_by(col(ConsentEvent.id))
    )
    return [
        ConsentEventPublic.model_validate(row, from_attributes=True)
        for row in session.execute(query).scalars()
    ]


def _store_evidence(store: KeyStore, files_root: Path, patient_id: uuid.UUID, source: Path) -> str:
    """Encrypt a scanned paper form with the patient's key; returns the plaintext's sha256."""
    digest = hashlib.sha256()
    evidence_id = uuid.uuid4()

    def chunks() -> Any:
        with source.open("rb") as handle:
            while piece := handle.read(1024 * 1024):
                digest.update(piece)
                yield piece

    target = files_root / str(patient_id) / "consent" / f"{evidence_id}.enc"
    cipher = patient_cipher(store, patient_id)
    encrypt_to_file(cipher.dek, chunks(), target, FileContext("consent", evidence_id, patient_id))
    return digest.hexdigest()
