"""Homework the patient ticks off in the portal.

A tick is the patient's own note about their own homework (`homework_checks`): it needs no
consent of its own, but it can only be set on an item the patient can see right now, which is
decided in SQL in the same statement as everything else the portal reads (the patient's own,
approved homework of a released session, `patient_chat` granted). An id that is not such an
item, whoever it belongs to, is a 404 audited as denied, so the answer never tells one patient
whether another patient's item exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, Outcome, record
from appliance.crypto.keystore import KeyStore
from appliance.errors import NotFound
from appliance.jobs.service import now_utc
from appliance.portal import service
from appliance.recordings.models import TherapySession
from appliance.retrieval.facts import Fact
from appliance.retrieval.models import FactKind, HomeworkCheck, SessionFact
from appliance.retrieval.search import patient_scope


@dataclass(frozen=True)
class Item:
    """One homework item as the portal shows it: the approved fact and whether it is done."""

    fact: Fact
    checked_at: datetime | None

    @property
    def done(self) -> bool:
        return self.checked_at is not None


def ticked(session: Session, patient_id: uuid.UUID) -> dict[uuid.UUID, datetime]:
    """When the patient ticked each item (fact id -> time); ticks only, no text."""
    rows = session.exec(select(HomeworkCheck).where(HomeworkCheck.patient_id == patient_id)).all()
    return {row.fact_id: row.checked_at for row in rows}


def items(session: Session, store: KeyStore, actor: Actor, patient_id: uuid.UUID) -> list[Item]:
    """The patient's visible homework, newest session first, each with its tick (the read is
    audited by `service.homework`)."""
    found = service.homework(session, store, actor, patient_id)
    done = ticked(session, patient_id)
    return [Item(fact, done.get(fact.id)) for fact in found]


def set_done(
    session: Session, actor: Actor, patient_id: uuid.UUID, fact_id: uuid.UUID, done: bool
) -> None:
    """Tick or untick one item (idempotent both ways; the caller commits). Not one of the
    patient's visible homework items: 404, audited as denied and committed."""
    visible = session.exec(
        select(SessionFact.id)
        .join(TherapySession, col(TherapySession.id) == col(SessionFact.session_id))
        .where(
            SessionFact.id == fact_id,
            SessionFact.patient_id == patient_id,
            col(SessionFact.approved).is_(True),
            SessionFact.kind == FactKind.homework.value,
            *patient_scope(patient_id),
        )
    ).first()
    details: dict[str, Any] = {"fact_id": str(fact_id), "done": done}
    if visible is None:
        _audit(session, actor, "denied", patient_id, details)
        session.commit()
        raise NotFound("no such homework item")
    if done:
        session.execute(
            insert(HomeworkCheck)
            .values(patient_id=patient_id, fact_id=fact_id, checked_at=now_utc())
            .on_conflict_do_nothing(index_elements=["patient_id", "fact_id"])
        )
    else:
        session.execute(
            delete(HomeworkCheck).where(
                col(HomeworkCheck.patient_id) == patient_id, col(HomeworkCheck.fact_id) == fact_id
            )
        )
    _audit(session, actor, "success", patient_id, details)


def _audit(
    session: Session,
    actor: Actor,
    outcome: Outcome,
    patient_id: uuid.UUID,
    details: dict[str, Any],
) -> None:
    entry = AuditEntry(
        "portal.homework.check", outcome, "patient", str(patient_id), patient_id, details
    )
    record(session, actor, entry)
