"""`/api/v1/messages`: therapist messages with a human in the loop, and the patient's inbox.

Thin: roles are checked here, everything else (which patients, which states) in
`messages.service` and `messages.inbox`, in SQL. Staff routes: therapists write, submit,
approve and reject for their assigned patients; administrators may list and read but not
write or approve (403). Patient routes (`/inbox`): the signed-in patient's own sent messages,
never an id of a patient from the request. Auditors: 403 everywhere.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlmodel import Session

from appliance.auth.guards import Principal, provide_principal
from appliance.chat.controllers import chat_model, own_patient_id
from appliance.clinic import access
from appliance.clinic.models import Role
from appliance.messages import inbox, service
from appliance.messages.models import MessageState
from appliance.messages.schemas import (
    ApproveRequest,
    DraftReminderRequest,
    InboxMessagePublic,
    MessageCreate,
    MessagePublic,
    MessageUpdate,
)


class MessageController(Controller):
    path = "/api/v1/messages"
    tags = ["messages"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def list_messages(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        message_state: Annotated[MessageState | None, QueryParameter(name="state")] = None,
        patient_id: FromQuery[uuid.UUID | None] = None,
    ) -> list[MessagePublic]:
        """Staff: the messages of the patients the caller may see, newest change first,
        optionally of one state (`?state=pending`) or one patient (`?patient_id=`)."""
        principal.require(*access.STAFF)
        found = service.list_messages(
            db_session, state.keystore, principal, state=message_state, patient_id=patient_id
        )
        db_session.commit()
        return found

    @post("/", sync_to_thread=True)
    def create(
        self,
        data: JSONBody[MessageCreate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> MessagePublic:
        """A therapist's own message to one of their patients, as a draft (201)."""
        principal.require(Role.therapist)
        made = service.create(db_session, state.keystore, principal, data)
        db_session.commit()
        return made

    @post("/draft-reminder", sync_to_thread=True)
    def draft_reminder(
        self,
        data: JSONBody[DraftReminderRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> MessagePublic:
        """A homework reminder drafted from the session's approved homework in the
        therapist's style (201, a draft). 409 when the session has no approved homework."""
        principal.require(Role.therapist)
        made = service.draft_reminder(
            db_session, state.keystore, principal, chat_model(state), data.session_id
        )
        db_session.commit()
        return made

    @get("/inbox", sync_to_thread=True)
    def own_inbox(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> list[InboxMessagePublic]:
        """Patient: your sent messages, newest first."""
        patient_id = own_patient_id(db_session, principal)
        found = inbox.inbox(db_session, state.keystore, principal.actor(), patient_id)
        db_session.commit()
        return found

    @get("/inbox/{message_id:uuid}", sync_to_thread=True)
    def read(
        self,
        message_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> InboxMessagePublic:
        """Patient: one of your messages; the first opening marks it read."""
        patient_id = own_patient_id(db_session, principal)
        found = inbox.read(db_session, state.keystore, principal.actor(), patient_id, message_id)
        db_session.commit()
        return found

    @get("/{message_id:uuid}", sync_to_thread=True)
    def get_message(
        self,
        message_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> MessagePublic:
        """Staff: one message in any state. 404 outside the caller's patients."""
        principal.require(*access.STAFF)
        found = service.get_message(db_session, state.keystore, principal, message_id)
        db_session.commit()
        return found

    @patch("/{message_id:uuid}", sync_to_thread=True)
    def edit(
        self,
        message_id: FromPath[uuid.UUID],
        data: JSONBody[MessageUpdate],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> MessagePublic:
        """Edit a draft or pending message; a pending one returns to draft. 409 otherwise,
        or when `revision` is given and is not the current one."""
        principal.require(Role.therapist)
        found = service.edit(db_session, state.keystore, principal, message_id, data)
        db_session.commit()
        return found

    @post("/{message_id:uuid}/submit", status_code=200, sync_to_thread=True)
    def submit(
        self,
        message_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> MessagePublic:
        """draft -> pending (409 from any other state)."""
        principal.require(Role.therapist)
        found = service.submit(db_session, state.keystore, principal, message_id)
        db_session.commit()
        return found

    @post("/{message_id:uuid}/approve", status_code=200, sync_to_thread=True)
    def approve(
        self,
        message_id: FromPath[uuid.UUID],
        data: JSONBody[ApproveRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> MessagePublic:
        """pending -> sent, by a therapist of the patient's: the only way a message reaches
        the patient. `revision` must be the one read (409 if it changed, or not pending)."""
        principal.require(Role.therapist)
        found = service.approve(db_session, state.keystore, principal, message_id, data.revision)
        db_session.commit()
        return found

    @post("/{message_id:uuid}/reject", status_code=200, sync_to_thread=True)
    def reject(
        self,
        message_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> MessagePublic:
        """draft or pending -> rejected (final)."""
        principal.require(Role.therapist)
        found = service.reject(db_session, state.keystore, principal, message_id)
        db_session.commit()
        return found
