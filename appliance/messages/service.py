"""Therapist messages with a human in the loop: the staff side. Plain
functions taking a DB session; the caller commits, except where a refused attempt must be
audited although the request fails (as `chat.alerts` does).

States: draft -> pending -> (approved ->) sent, and draft/pending -> rejected.

- Only a therapist assigned to the message's patient may create, draft, edit, submit,
  approve or reject it. Administrators may list and read messages (they see every patient)
  but never approve one: the approval is a clinical act. Patients and auditors have no
  staff access; a patient reads only their own sent messages. Every rule is a SQL condition,
  so a message outside it reads exactly like one that does not exist (404, audited denied).
- Editing is allowed in draft and pending. Editing a pending message puts it back to draft:
  what is approved is always a text that was submitted as final, and a change after
  submission needs submitting again. Every edit bumps `revision`, and an approval names the
  revision its therapist read, so a text changed by someone else meanwhile is not approved.
- Approving is the only way to send. It approves and sends in one transaction (approved_by,
  approved_at, then sent_at and state 'sent'): delivery is the row's state, read by the
  portal inbox, so it cannot fail apart from the approval. The database refuses a sent row
  without an approval (see models.py).
- Rejected and sent messages are final.

Audited with ids only (`message.draft`, `.create`, `.edit`, `.submit`, `.approve`, `.send`,
`.reject`, `.list`, `.view`), never the text. The patient's side is `inbox.py`.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import false
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.auth.guards import Principal
from appliance.chat.llm import ChatModel
from appliance.clinic import access
from appliance.clinic.models import Patient, Role, User
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.errors import Conflict, NotFound
from appliance.jobs.service import now_utc
from appliance.messages import drafting
from appliance.messages.models import MessageSource, MessageState, PatientMessage
from appliance.messages.records import (
    TABLE,
    clean_text,
    new_row,
    open_body,
    public,
    public_one,
    seal_body,
)
from appliance.messages.schemas import MessageCreate, MessagePublic, MessageUpdate
from appliance.recordings.models import TherapySession
from appliance.reports import profiles
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind

EDITABLE = (MessageState.draft.value, MessageState.pending.value)
LIST_LIMIT = 200


# Who may do what, in SQL ---------------------------------------------------------------------


def assigned_patient_ids(principal: Principal) -> Any:
    """The patients whose messages `principal` may write and approve: a therapist's assigned
    patients; nobody's for any other role (an administrator sees every patient, but the
    approval is a clinical act)."""
    if principal.role != Role.therapist:
        return select(Patient.id).where(false())
    return access.visible_patient_ids(principal)


def writable(principal: Principal) -> Any:
    """The SQL condition for the messages `principal` may write and approve."""
    return col(PatientMessage.patient_id).in_(assigned_patient_ids(principal))


def readable(principal: Principal) -> Any:
    """The SQL condition for the messages staff may read (every state): their patients'."""
    if principal.role not in access.STAFF:
        return false()
    return col(PatientMessage.patient_id).in_(access.visible_patient_ids(principal))


def _audit(
    session: Session,
    actor: Actor,
    action: str,
    row: PatientMessage,
    details: dict[str, Any] | None = None,
) -> None:
    entry = AuditEntry(
        f"message.{action}", "success", TABLE, str(row.id), row.patient_id, details or {}
    )
    record(session, actor, entry)


def _refuse(session: Session, actor: Actor, action: str, object_type: str, object_id: Any) -> None:
    """Audit a refused attempt and commit it, though the request fails with a 404."""
    record(session, actor, AuditEntry(f"message.{action}", "denied", object_type, str(object_id)))
    session.commit()


def _locked(
    session: Session, principal: Principal, message_id: uuid.UUID, action: str
) -> PatientMessage:
    """The message, locked for a transition, if the principal may write it; else 404."""
    row = session.exec(
        select(PatientMessage)
        .where(PatientMessage.id == message_id, writable(principal))
        .with_for_update(of=PatientMessage)
    ).first()
    if row is None:
        _refuse(session, principal.actor(), action, TABLE, message_id)
        raise NotFound("no such message")
    return row


# Drafting and writing --------------------------------------------------------------------


def draft_reminder(
    session: Session,
    store: KeyStore,
    principal: Principal,
    model: ChatModel,
    session_id: uuid.UUID,
) -> MessagePublic:
    """A homework reminder for one of the therapist's sessions, drafted from the session's
    approved homework in the style of the therapist who asks (their profile, if they have
    one; they become the message's author), see drafting.py. 409 when the session has
    no approved homework. The model is asked only with the patient's `ai_analysis` consent;
    otherwise, or when it fails, the draft is the plain template (source `template`)."""
    therapy_session = session.exec(
        select(TherapySession).where(
            TherapySession.id == session_id,
            col(TherapySession.patient_id).in_(assigned_patient_ids(principal)),
        )
    ).first()
    if therapy_session is None:
        _refuse(session, principal.actor(), "draft", "session", session_id)
        raise NotFound("no such session")
    patient_id = therapy_session.patient_id
    found = facts.approved_for(
        session,
        store,
        patient_id,
        [(therapy_session.id, therapy_session.session_date)],
        [FactKind.homework],
    )
    if not found:
        raise Conflict(
            "the session has no approved homework yet; approve the session's report first"
        )
    items = [
        drafting.Item(f.text, f.frequency, f.due) for f in sorted(found, key=lambda f: f.start)
    ]
    therapist = session.get(User, principal.user_id)
    style = profiles.writing_profile(session, principal.user_id)
    allowed = consent.is_granted(session, patient_id, Purpose.ai_analysis)
    drafted = drafting.draft(
        model if allowed else None,
        items,
        style,
        therapist.name if therapist is not None else "",
        therapy_session.session_date,
    )
    row = new_row(
        session,
        store,
        principal.user_id,
        patient_id,
        therapy_session.id,
        (drafted.subject, drafted.body),
        drafted.source,
        (drafted.model_id, drafted.prompt_hash),
    )
    _audit(
        session,
        principal.actor(),
        "draft",
        row,
        {
            "session_id": str(therapy_session.id),
            "source": drafted.source.value,
            "fallback": drafted.fallback,
            "items": len(items),
            "fact_ids": [str(f.id) for f in found],
            "model_id": drafted.model_id,
            "prompt_hash": drafted.prompt_hash,
        },
    )
    return public_one(session, store, row)


def create(
    session: Session, store: KeyStore, principal: Principal, data: MessageCreate
) -> MessagePublic:
    """A message the therapist writes themself: a draft, like a drafted one."""
    assigned = session.exec(
        assigned_patient_ids(principal).where(Patient.id == data.patient_id)
    ).first()
    if assigned is None:
        _refuse(session, principal.actor(), "create", "patient", data.patient_id)
        raise NotFound("no such patient")
    if data.session_id is not None:
        owned = session.exec(
            select(TherapySession.id).where(
                TherapySession.id == data.session_id, TherapySession.patient_id == data.patient_id
            )
        ).first()
        if owned is None:
            raise NotFound("no such session of this patient")
    row = new_row(
        session,
        store,
        principal.user_id,
        data.patient_id,
        data.session_id,
        (data.subject, data.body),
        MessageSource.therapist,
    )
    session_ref = str(data.session_id) if data.session_id is not None else None
    _audit(session, principal.actor(), "create", row, {"session_id": session_ref})
    return public_one(session, store, row)


def edit(
    session: Session,
    store: KeyStore,
    principal: Principal,
    message_id: uuid.UUID,
    data: MessageUpdate,
) -> MessagePublic:
    """Change the subject and/or body of a draft or pending message. A pending one goes back
    to draft (it must be submitted again); `revision` bumps."""
    row = _locked(session, principal, message_id, "edit")
    if row.state not in EDITABLE:
        raise Conflict(f"a {row.state} message cannot be edited")
    _check_revision(row, data.revision)
    current = open_body(store, row)
    subject = data.subject if data.subject is not None else current["subject"]
    body = data.body if data.body is not None else current["body"]
    subject, body = clean_text(subject, body)
    changed = [
        name for name, value in (("subject", subject), ("body", body)) if value != current[name]
    ]
    before = row.state
    seal_body(store, row, subject, body)
    row.revision += 1
    row.state = MessageState.draft.value
    row.submitted_at = None
    row.updated_at = now_utc()
    session.add(row)
    session.flush()
    _audit(
        session,
        principal.actor(),
        "edit",
        row,
        {"from": before, "to": row.state, "revision": row.revision, "changed": changed},
    )
    return public_one(session, store, row)


def submit(
    session: Session, store: KeyStore, principal: Principal, message_id: uuid.UUID
) -> MessagePublic:
    """draft -> pending: the text is final and waits for approval."""
    row = _locked(session, principal, message_id, "submit")
    if row.state != MessageState.draft.value:
        raise Conflict(f"only a draft can be submitted for approval; this message is {row.state}")
    row.state = MessageState.pending.value
    row.submitted_at = row.updated_at = now_utc()
    return _transition(session, store, principal, row, "submit", MessageState.draft)


def approve(
    session: Session,
    store: KeyStore,
    principal: Principal,
    message_id: uuid.UUID,
    revision: int,
) -> MessagePublic:
    """pending -> approved -> sent, in the caller's one transaction: the only way a message
    reaches the patient. `revision` must be the one the therapist read."""
    row = _locked(session, principal, message_id, "approve")
    if row.state != MessageState.pending.value:
        raise Conflict(
            f"only a message submitted for approval can be approved; this one is {row.state}"
        )
    _check_revision(row, revision)
    now = now_utc()
    row.state = MessageState.approved.value
    row.approved_by, row.approved_at, row.updated_at = principal.user_id, now, now
    _transition(session, store, principal, row, "approve", MessageState.pending)
    row.state = MessageState.sent.value
    row.sent_at = now
    return _transition(session, store, principal, row, "send", MessageState.approved)


def reject(
    session: Session, store: KeyStore, principal: Principal, message_id: uuid.UUID
) -> MessagePublic:
    """draft/pending -> rejected: discarded, never sent."""
    row = _locked(session, principal, message_id, "reject")
    if row.state not in EDITABLE:
        raise Conflict(f"a {row.state} message cannot be rejected")
    before = MessageState(row.state)
    row.state = MessageState.rejected.value
    row.rejected_by, row.rejected_at = principal.user_id, now_utc()
    row.updated_at = row.rejected_at
    return _transition(session, store, principal, row, "reject", before)


def _check_revision(row: PatientMessage, revision: int | None) -> None:
    if revision is not None and revision != row.revision:
        raise Conflict("the message changed since you read it; read it again first")


def _transition(
    session: Session,
    store: KeyStore,
    principal: Principal,
    row: PatientMessage,
    action: str,
    before: MessageState,
) -> MessagePublic:
    session.add(row)
    session.flush()  # the database's checks see every state the row passes through
    details = {"from": before.value, "to": row.state, "revision": row.revision}
    _audit(session, principal.actor(), action, row, details)
    return public_one(session, store, row)


# Reading ---------------------------------------------------------------------------------


def list_messages(
    session: Session,
    store: KeyStore,
    principal: Principal,
    *,
    state: MessageState | None = None,
    patient_id: uuid.UUID | None = None,
    limit: int = LIST_LIMIT,
) -> list[MessagePublic]:
    """The messages of the patients the staff member may see: drafts and pending ones first,
    then newest change first; the listing is audited with the ids."""
    query = select(PatientMessage).where(readable(principal))
    if state is not None:
        query = query.where(PatientMessage.state == state.value)
    if patient_id is not None:
        query = query.where(PatientMessage.patient_id == patient_id)
    waiting_first = col(PatientMessage.state).in_(EDITABLE).desc()  # work is never cut off
    rows = session.exec(
        query.order_by(
            waiting_first, col(PatientMessage.updated_at).desc(), col(PatientMessage.id)
        ).limit(limit)
    ).all()
    found = public(session, store, rows)
    record(
        session,
        principal.actor(),
        AuditEntry(
            "message.list",
            object_type=TABLE,
            details={
                "count": len(found),
                "message_ids": [str(m.id) for m in found],
                "patient_ids": sorted({str(m.patient_id) for m in found}),
                "state": state.value if state is not None else None,
            },
        ),
    )
    return found


def get_message(
    session: Session, store: KeyStore, principal: Principal, message_id: uuid.UUID
) -> MessagePublic:
    """One message for staff (any state), audited; 404 (audited) outside their patients."""
    row = session.exec(
        select(PatientMessage).where(PatientMessage.id == message_id, readable(principal))
    ).first()
    if row is None:
        _refuse(session, principal.actor(), "view", TABLE, message_id)
        raise NotFound("no such message")
    _audit(session, principal.actor(), "view", row, {"state": row.state})
    return public_one(session, store, row)
