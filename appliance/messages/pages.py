"""Console: a therapist's messages to patients (drafts to edit and submit, messages waiting for
approval, what was sent), and the portal page where a patient reads one.

Plain forms, POST-redirect-GET, CSRF in a hidden field, no JavaScript. Every form that acts
on a message carries the revision the therapist read, so "Approve and send" approves exactly
the text on the screen (a change made meanwhile is a 409, not a silent send). Administrators
see the lists without any button; the service refuses them anyway.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from pydantic import ValidationError
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import Principal
from appliance.chat.controllers import chat_model, own_patient_id
from appliance.clinic import access
from appliance.clinic import service as clinic
from appliance.clinic.models import Role
from appliance.errors import Invalid, describe_validation_error
from appliance.messages import inbox, service
from appliance.messages.models import MessageState
from appliance.messages.schemas import BODY_MAX, SUBJECT_MAX, MessageCreate, MessageUpdate
from appliance.portal.pages import PortalPages, provide_patient
from appliance.web.i18n import N_, _, long_date
from appliance.web.pages import PageController, page, see_other

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
Schema = TypeVar("Schema", bound=SQLModel)
HOME = "/console/messages"

# Marked for translation here, translated when shown (the request's language).
NOTICES = {
    "created": N_("Draft saved. Submit it for approval when it is ready."),
    "drafted": N_(
        "Reminder drafted from the approved homework. Read it, edit it if needed, then "
        "submit it for approval."
    ),
    "edited": N_("Changes saved. The message is a draft again: submit it for approval."),
    "submitted": N_("Submitted for approval."),
    "sent": N_("Approved and sent to the patient's portal inbox."),
    "rejected": N_("Message rejected; it will not be sent."),
}

# The order of the console's sections.
SECTIONS = (
    (MessageState.draft, N_("Drafts")),
    (MessageState.pending, N_("Waiting for approval")),
    (MessageState.sent, N_("Sent")),
    (MessageState.rejected, N_("Rejected")),
)


class CsrfForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)


class RevisionForm(CsrfForm):
    revision: int | None = None


class EditForm(RevisionForm):
    subject: str = Field(default="", max_length=SUBJECT_MAX)
    body: str = Field(default="", max_length=BODY_MAX)


class CreateForm(CsrfForm):
    patient_id: uuid.UUID
    subject: str = Field(default="", max_length=SUBJECT_MAX)
    body: str = Field(default="", max_length=BODY_MAX)


class DraftForm(CsrfForm):
    session_id: uuid.UUID


def _validated(schema: type[Schema], values: dict[str, Any]) -> Schema:
    """The form's values as the API's schema; a bad value is a 422 page naming the field."""
    try:
        return schema.model_validate(values)
    except ValidationError as exc:
        raise Invalid(describe_validation_error(exc)) from None


def _done(what: str, message_id: uuid.UUID) -> Response[Any]:
    return see_other(f"{HOME}?done={what}#message-{message_id}")


class MessagePages(PageController):
    path = HOME

    @get("/", sync_to_thread=True)
    def messages(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(*access.STAFF)
        found = service.list_messages(db_session, state.keystore, principal)
        patients = []
        if principal.role == Role.therapist:  # who a new message may go to
            patients = clinic.list_patients(
                db_session,
                state.keystore,
                principal.actor(),
                service.assigned_patient_ids(principal),
            )
        db_session.commit()
        return page(
            request,
            "messages.html",
            principal,
            title=_("Messages"),
            sections=[
                (s.value, _(label), [m for m in found if m.state == s.value])
                for s, label in SECTIONS
            ],
            patients=patients,
            may_write=principal.role == Role.therapist,
            zone=ZoneInfo(state.settings.clinic.timezone),
            subject_max=SUBJECT_MAX,
            body_max=BODY_MAX,
            notice=_(NOTICES[done]) if done in NOTICES else None,
        )

    @post("/", sync_to_thread=True)
    def create(
        self,
        data: Annotated[CreateForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.therapist)
        made = service.create(
            db_session,
            state.keystore,
            principal,
            _validated(MessageCreate, data.model_dump(exclude={"csrf_token"})),
        )
        db_session.commit()
        return _done("created", made.id)

    @post("/draft-reminder", sync_to_thread=True)
    def draft_reminder(
        self,
        data: Annotated[DraftForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.therapist)
        made = service.draft_reminder(
            db_session, state.keystore, principal, chat_model(state), data.session_id
        )
        db_session.commit()
        return _done("drafted", made.id)

    @post("/{message_id:uuid}/edit", sync_to_thread=True)
    def edit(
        self,
        message_id: FromPath[uuid.UUID],
        data: Annotated[EditForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.therapist)
        change = _validated(
            MessageUpdate,
            {"subject": data.subject or None, "body": data.body or None, "revision": data.revision},
        )
        found = service.edit(db_session, state.keystore, principal, message_id, change)
        db_session.commit()
        return _done("edited", found.id)

    @post("/{message_id:uuid}/submit", sync_to_thread=True)
    def submit(
        self,
        message_id: FromPath[uuid.UUID],
        data: Annotated[RevisionForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.therapist)
        found = service.submit(db_session, state.keystore, principal, message_id)
        db_session.commit()
        return _done("submitted", found.id)

    @post("/{message_id:uuid}/approve", sync_to_thread=True)
    def approve(
        self,
        message_id: FromPath[uuid.UUID],
        data: Annotated[RevisionForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.therapist)
        if data.revision is None:
            raise Invalid(_("the form did not say which revision you approve; reload the page"))
        found = service.approve(db_session, state.keystore, principal, message_id, data.revision)
        db_session.commit()
        return _done("sent", found.id)

    @post("/{message_id:uuid}/reject", sync_to_thread=True)
    def reject(
        self,
        message_id: FromPath[uuid.UUID],
        data: Annotated[CsrfForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.therapist)
        found = service.reject(db_session, state.keystore, principal, message_id)
        db_session.commit()
        return _done("rejected", found.id)


class PortalMessagePages(PageController):
    """The portal's reading page for one message (the list is on the portal's home)."""

    path = "/portal/messages"
    exception_handlers = PortalPages.exception_handlers
    dependencies = {"principal": Provide(provide_patient)}

    @get("/{message_id:uuid}", sync_to_thread=True)
    def read(
        self,
        request: Request[Any, Any, Any],
        message_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Template:
        patient_id = own_patient_id(db_session, principal)
        found = inbox.read(db_session, state.keystore, principal.actor(), patient_id, message_id)
        db_session.commit()
        return page(
            request,
            "portal_message.html",
            principal,
            title=found.subject,
            message=found,
            zone=ZoneInfo(state.settings.clinic.timezone),
            long_date=long_date,
        )
