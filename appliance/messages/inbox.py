"""The patient's portal inbox: their sent messages, and opening one.

Plain functions; `patient_id` is always the signed-in patient's own (the caller resolves it
from the account, never from the request). The inbox is `state = 'sent'` in SQL, and the
database allows that state only with a recorded approval, so a draft, a pending or a
rejected message can never appear here, whatever else changes. Listing and opening are
audited with ids only; a message that is not the patient's, or not sent, is a 404 audited as
denied, like one that does not exist.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.crypto.keystore import KeyStore
from appliance.errors import NotFound
from appliance.jobs.service import now_utc
from appliance.messages.models import MessageState, PatientMessage
from appliance.messages.records import TABLE, inbox_public
from appliance.messages.schemas import InboxMessagePublic

INBOX_LIMIT = 100


def _sent_to(patient_id: uuid.UUID) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (
        col(PatientMessage.patient_id) == patient_id,
        col(PatientMessage.state) == MessageState.sent.value,
    )


def inbox(
    session: Session, store: KeyStore, actor: Actor, patient_id: uuid.UUID
) -> list[InboxMessagePublic]:
    """The patient's sent messages, newest first (audited: count and unread)."""
    rows = session.exec(
        select(PatientMessage)
        .where(*_sent_to(patient_id))
        .order_by(col(PatientMessage.sent_at).desc(), col(PatientMessage.id))
        .limit(INBOX_LIMIT)
    ).all()
    found = inbox_public(session, store, rows)
    record(
        session,
        actor,
        AuditEntry(
            "message.inbox",
            "success",
            "patient",
            str(patient_id),
            patient_id,
            {
                "count": len(found),
                "message_ids": [str(m.id) for m in found],
                "unread": sum(1 for m in found if m.read_at is None),
            },
        ),
    )
    return found


def read(
    session: Session, store: KeyStore, actor: Actor, patient_id: uuid.UUID, message_id: uuid.UUID
) -> InboxMessagePublic:
    """One of the patient's sent messages. The first opening sets `read_at`, which later
    openings keep; every opening is audited (`message.read`)."""
    row = session.exec(
        select(PatientMessage)
        .where(PatientMessage.id == message_id, *_sent_to(patient_id))
        .with_for_update(of=PatientMessage)
    ).first()
    if row is None:
        record(session, actor, AuditEntry("message.read", "denied", TABLE, str(message_id)))
        session.commit()
        raise NotFound("no such message")
    first = row.read_at is None
    if first:
        row.read_at = now_utc()
        session.add(row)
        session.flush()
    entry = AuditEntry(
        "message.read", "success", TABLE, str(row.id), patient_id, {"first_read": first}
    )
    record(session, actor, entry)
    return inbox_public(session, store, [row])[0]


def unread_count(session: Session, patient_id: uuid.UUID) -> int:
    """How many sent messages the patient has not opened (one COUNT, not audited: a number
    naming no message)."""
    query = (
        select(func.count())
        .select_from(PatientMessage)
        .where(*_sent_to(patient_id), col(PatientMessage.read_at).is_(None))
    )
    return int(session.exec(query).one())
