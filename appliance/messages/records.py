"""A message row's sealed text and its public forms: what both the staff side
(`service.py`) and the patient side (`inbox.py`) read and write.

The subject and body are one JSON document sealed with the patient's key, bound to the
`patient_messages` table, its `body_enc` column and the row's id: a ciphertext copied to
another row or patient does not open.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlmodel import Session, col, select

from appliance.clinic.models import Patient, User
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Invalid
from appliance.messages.models import MessageSource, PatientMessage
from appliance.messages.schemas import BODY_MAX, SUBJECT_MAX, InboxMessagePublic, MessagePublic
from appliance.pipeline import documents

TABLE = PatientMessage.__tablename__


def clean_text(subject: str, body: str) -> tuple[str, str]:
    """The subject on one line and the body trimmed; both required, both bounded."""
    subject, body = " ".join(subject.split()), body.strip()
    if not subject or not body:
        raise Invalid("a message needs a subject and a body")
    if len(subject) > SUBJECT_MAX or len(body) > BODY_MAX:
        raise Invalid(
            f"a message has at most {SUBJECT_MAX} characters of subject and {BODY_MAX} of body"
        )
    return subject, body


def seal_body(store: KeyStore, row: PatientMessage, subject: str, body: str) -> None:
    cipher = patient_cipher(store, row.patient_id)
    row.body_enc = documents.seal(cipher, TABLE, row.id, {"subject": subject, "body": body})


def open_body(store: KeyStore, row: PatientMessage) -> dict[str, str]:
    cipher = patient_cipher(store, row.patient_id)
    opened = documents.open_sealed(cipher, TABLE, row.id, row.body_enc)
    return {"subject": str(opened["subject"]), "body": str(opened["body"])}


def new_row(
    session: Session,
    store: KeyStore,
    author_id: uuid.UUID,
    patient_id: uuid.UUID,
    session_id: uuid.UUID | None,
    text: tuple[str, str],
    source: MessageSource,
    provenance: tuple[str | None, str | None] = (None, None),
) -> PatientMessage:
    """A new draft (flushed): `text` is (subject, body), `provenance` (model_id, prompt_hash)."""
    subject, body = clean_text(*text)
    row = PatientMessage(
        patient_id=patient_id,
        session_id=session_id,
        therapist_id=author_id,
        source=source.value,
        body_enc=b"",
        model_id=provenance[0],
        prompt_hash=provenance[1],
    )
    seal_body(store, row, subject, body)
    session.add(row)
    session.flush()
    return row


def public_one(session: Session, store: KeyStore, row: PatientMessage) -> MessagePublic:
    return public(session, store, [row])[0]


def public(
    session: Session, store: KeyStore, rows: Sequence[PatientMessage]
) -> list[MessagePublic]:
    names = _patient_names(session, store, {row.patient_id for row in rows})
    found = []
    for row in rows:
        opened = open_body(store, row)
        found.append(
            MessagePublic(
                id=row.id,
                patient_id=row.patient_id,
                patient_name=names.get(row.patient_id, ""),
                session_id=row.session_id,
                therapist_id=row.therapist_id,
                state=row.state,
                source=row.source,
                subject=opened["subject"],
                body=opened["body"],
                revision=row.revision,
                model_id=row.model_id,
                created_at=row.created_at,
                updated_at=row.updated_at,
                submitted_at=row.submitted_at,
                approved_by=row.approved_by,
                approved_at=row.approved_at,
                sent_at=row.sent_at,
                rejected_by=row.rejected_by,
                rejected_at=row.rejected_at,
                read_at=row.read_at,
            )
        )
    return found


def inbox_public(
    session: Session, store: KeyStore, rows: Sequence[PatientMessage]
) -> list[InboxMessagePublic]:
    senders = _user_names(session, {row.therapist_id for row in rows})
    found = []
    for row in rows:
        assert row.sent_at is not None  # the database guarantees it for a sent message
        opened = open_body(store, row)
        found.append(
            InboxMessagePublic(
                id=row.id,
                subject=opened["subject"],
                body=opened["body"],
                sender_name=senders.get(row.therapist_id, ""),
                sent_at=row.sent_at,
                read_at=row.read_at,
            )
        )
    return found


def _patient_names(
    session: Session, store: KeyStore, patient_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """One decryption per patient, however many messages."""
    wanted = list(patient_ids)
    if not wanted:
        return {}
    rows = session.exec(select(Patient).where(col(Patient.id).in_(wanted))).all()
    return {
        p.id: patient_cipher(store, p.id).open("patients", "name_enc", p.id, p.name_enc)
        for p in rows
    }


def _user_names(session: Session, user_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    wanted = list(user_ids)
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.name).where(col(User.id).in_(wanted))).all()
    return {row[0]: row[1] for row in rows}
