"""Granting, revoking and checking consent. Checks are SQL expressions, so every later query
(uploads, job runs, retrieval) can enforce consent at the moment of use, in the same statement."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, cast

from sqlalchemy import ColumnElement, literal, select
from sqlmodel import Session, col

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.models import Patient
from appliance.consent import evidence as evidence_files
from appliance.consent.models import ConsentEvent, ConsentMethod, ConsentStatus, Purpose
from appliance.consent.schemas import ConsentEventPublic, ConsentState
from appliance.crypto.keystore import KeyStore
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
    evidence: Path | evidence_files.StoredEvidence | None = None,
    store: KeyStore | None = None,
    files_root: Path | None = None,
) -> list[ConsentEventPublic]:
    """Append one row per purpose (never an UPDATE); the caller commits. `evidence` (a file
    to encrypt, or one `evidence_files.store` already wrote) is linked to the first row and
    named by every row's `evidence_sha256`; a failure here removes its file."""
    if session.get(Patient, patient_id) is None:
        raise NotFound("no such patient")
    stored = None
    if evidence is not None:
        if store is None or actor.user_id is None:
            raise ValueError("evidence needs the key store and a staff member recording it")
        if isinstance(evidence, Path):
            if files_root is None:
                raise ValueError("evidence needs the files folder")
            with evidence.open("rb") as handle:
                stored = evidence_files.store(store, files_root, patient_id, handle, evidence.name)
        else:
            stored = evidence
    try:
        return _append(session, actor, patient_id, purposes, status, method, stored, store)
    except BaseException:
        if stored is not None:
            stored.discard()
        raise


def _append(
    session: Session,
    actor: Actor,
    patient_id: uuid.UUID,
    purposes: list[Purpose],
    status: ConsentStatus,
    method: ConsentMethod,
    stored: evidence_files.StoredEvidence | None,
    store: KeyStore | None,
) -> list[ConsentEventPublic]:
    evidence_sha = stored.sha256 if stored is not None else None
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
    if stored is not None and store is not None and actor.user_id is not None:
        assert rows[0].id is not None  # flushed
        evidence_files.attach(session, store, stored, rows[0].id, actor.user_id)
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
