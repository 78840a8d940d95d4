"""Risk flags: raised by a draft, decided by the therapist (acknowledge or dismiss, with a
reason). A report cannot be approved while a flag of its session is open.

A regenerated draft that finds the same risk at the same place does not raise it again: the
therapist's earlier decision stands. The evidence (utterance times) and the reason are sealed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Conflict, Invalid, NotFound
from appliance.jobs.service import now_utc
from appliance.pipeline import documents
from appliance.reports.document import RiskFinding, Source
from appliance.reports.models import FlagStatus, RiskCategory, RiskFlag, SessionReport

TABLE = RiskFlag.__tablename__
MAX_REASON = 2000


@dataclass(frozen=True)
class Flag:
    id: uuid.UUID
    session_id: uuid.UUID
    patient_id: uuid.UUID
    category: RiskCategory
    status: FlagStatus
    evidence: tuple[Source, ...]
    note: str
    reason: str | None
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    created_at: datetime


def raise_flags(
    session: Session, store: KeyStore, report: SessionReport, findings: Sequence[RiskFinding]
) -> int:
    """An open flag per finding not raised before at the same place; returns how many."""
    known = {
        (row.category, round(row.start_seconds, 1))
        for row in session.exec(select(RiskFlag).where(RiskFlag.session_id == report.session_id))
    }
    cipher = patient_cipher(store, report.patient_id)
    raised = 0
    for finding in findings:
        if not finding.sources:
            continue
        start = min(s.start for s in finding.sources)
        if (finding.category.value, round(start, 1)) in known:
            continue
        flag_id = uuid.uuid4()
        body = {
            "evidence": [
                {"start": s.start, "end": s.end, "speaker": s.speaker} for s in finding.sources
            ],
            "note": finding.note,
        }
        session.add(
            RiskFlag(
                id=flag_id,
                session_id=report.session_id,
                patient_id=report.patient_id,
                report_id=report.id,
                category=finding.category.value,
                start_seconds=start,
                end_seconds=max(s.end for s in finding.sources),
                body_enc=documents.seal(cipher, TABLE, flag_id, body),
            )
        )
        raised += 1
    return raised


def open_count(session: Session, session_id: uuid.UUID) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(RiskFlag)
            .where(RiskFlag.session_id == session_id, RiskFlag.status == FlagStatus.open.value)
        ).one()
    )


def _open(store: KeyStore, row: RiskFlag) -> Flag:
    cipher = patient_cipher(store, row.patient_id)
    body = documents.open_sealed(cipher, TABLE, row.id, row.body_enc)
    reason = (
        cipher.open(TABLE, "reason_enc", row.id, row.reason_enc)
        if row.reason_enc is not None
        else None
    )
    return Flag(
        row.id,
        row.session_id,
        row.patient_id,
        RiskCategory(row.category),
        FlagStatus(row.status),
        tuple(Source(e["start"], e["end"], e["speaker"]) for e in body["evidence"]),
        body.get("note", ""),
        reason,
        row.decided_by,
        row.decided_at,
        row.created_at,
    )


def for_session(session: Session, store: KeyStore, session_id: uuid.UUID) -> list[Flag]:
    """The session's flags, by where they were raised (the caller authorised the session)."""
    rows = session.exec(
        select(RiskFlag)
        .where(RiskFlag.session_id == session_id)
        .order_by(col(RiskFlag.start_seconds), col(RiskFlag.created_at))
    ).all()
    return [_open(store, row) for row in rows]


def open_flag_count(session: Session, visible_patients: object) -> int:
    """How many open flags of the patients a principal sees: one COUNT, for the nav badge
    (a flag nobody opens is a flag nobody reads)."""
    query = (
        select(func.count())
        .select_from(RiskFlag)
        .where(RiskFlag.status == FlagStatus.open.value)
        .where(col(RiskFlag.patient_id).in_(visible_patients))  # type: ignore[arg-type]
    )
    return int(session.exec(query).one())


def open_flags(session: Session, store: KeyStore, visible_patients: object) -> list[Flag]:
    """Open flags of the patients a principal sees (`visible_patient_ids`), oldest first:
    the therapist's risk-flag inbox."""
    rows = session.exec(
        select(RiskFlag)
        .where(RiskFlag.status == FlagStatus.open.value)
        .where(col(RiskFlag.patient_id).in_(visible_patients))  # type: ignore[arg-type]
        .order_by(col(RiskFlag.created_at))
    ).all()
    return [_open(store, row) for row in rows]


def decide(
    session: Session,
    store: KeyStore,
    actor: Actor,
    visible_patients: object,
    flag_id: uuid.UUID,
    decision: FlagStatus,
    reason: str,
) -> Flag:
    """Acknowledge or dismiss an open flag with a reason (caller commits). A flag of a patient
    the actor does not see is a 404, audited as denied."""
    if decision == FlagStatus.open:
        raise Invalid("a decision is acknowledged or dismissed")
    reason = reason.strip()
    if not reason:
        raise Invalid("give a reason for the decision")
    if len(reason) > MAX_REASON:
        raise Invalid(f"the reason is longer than {MAX_REASON} characters")
    row = session.exec(
        select(RiskFlag)
        .where(RiskFlag.id == flag_id)
        .where(col(RiskFlag.patient_id).in_(visible_patients))  # type: ignore[arg-type]
        .with_for_update()
    ).first()
    if row is None or actor.role != "therapist":
        patient = None if row is None else row.patient_id
        record(
            session,
            actor,
            AuditEntry("risk_flag.decide", "denied", "risk_flag", str(flag_id), patient),
        )
        session.commit()
        raise NotFound("no such risk flag")
    if row.status != FlagStatus.open.value:
        raise Conflict(f"this flag was already {row.status}")
    cipher = patient_cipher(store, row.patient_id)
    row.status, row.decided_by, row.decided_at = decision.value, actor.user_id, now_utc()
    row.reason_enc = cipher.seal(TABLE, "reason_enc", row.id, reason)
    session.add(row)
    record(
        session,
        actor,
        AuditEntry(
            "risk_flag.decide",
            "success",
            "risk_flag",
            str(row.id),
            row.patient_id,
            {
                "decision": decision.value,
                "category": row.category,
                "session_id": str(row.session_id),
            },
        ),
    )
    session.flush()
    return _open(store, row)
