"""`POST /api/v1/chat`: a signed-in patient asks about their own released sessions.
`POST /api/v1/chat/voice` turns a short spoken question into text (`chat.voice`).

Thin: the patient is the one linked to the signed-in portal account (never an id from the
request), and everything else is `chat.service`. The model is the loopback LLM service's
client, one per web process; the web process itself never loads weights.

`/api/v1/alerts`: staff list and acknowledge crisis alerts (`chat.alerts`), the JSON twin of
the console's alerts page.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from sqlmodel import Session, select

from appliance.auth.guards import Principal, provide_principal
from appliance.chat import alerts, inflight, service, voice
from appliance.chat.llm import ChatModel, LlamaServiceClient
from appliance.chat.schemas import ChatRequest, ChatResponse, VoiceQuestionPublic
from appliance.clinic import access
from appliance.clinic.models import Patient, Role
from appliance.clinic.preferences import effective_settings
from appliance.errors import DomainError, NotFound
from appliance.observability.controllers import first_token

logger = logging.getLogger("appliance.chat")


def chat_model(state: State) -> ChatModel:
    """The process's model client (tests put a fake in `state.chat_model`)."""
    model: Any = state.get("chat_model")
    if model is None:
        model = LlamaServiceClient.from_settings(state.settings)
        state.chat_model = model
    return model  # type: ignore[no-any-return]


def chat_context(db_session: Session, state: State, principal: Principal) -> service.ChatContext:
    """What a web request answers with: its database session, the process's keys, settings
    and model client, and the signed-in patient as the audited actor. The settings carry the
    clinic's current preferences (crisis text, hourly limit, time zone), read per request."""
    settings = effective_settings(state.settings, db_session)
    return service.ChatContext(
        db_session, state.keystore, settings, principal.actor(), chat_model(state)
    )


def own_patient_id(session: Session, principal: Principal) -> uuid.UUID:
    principal.require(Role.patient)
    found = session.exec(select(Patient.id).where(Patient.user_id == principal.user_id)).first()
    if found is None:
        raise NotFound("no patient record is linked to this account")
    return found


class ChatController(Controller):
    path = "/api/v1/chat"
    tags = ["chat"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @post("/", status_code=200, sync_to_thread=True)
    def ask(
        self,
        data: JSONBody[ChatRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> ChatResponse:
        """An answer from the patient's released sessions, every sentence cited, or a refusal
        with its reason (not_found, out_of_scope, crisis). 429 with `retry_after` past the
        hourly limit; 503 when the language model service is busy or down."""
        patient_id = own_patient_id(db_session, principal)
        context = chat_context(db_session, state, principal)
        with inflight.one_question(patient_id):  # 429 while their last one is answered
            return service.answer(
                context, patient_id, data.question, conversation_id=data.conversation_id
            )

    @post("/stream", status_code=200, sync_to_thread=True)
    def ask_stream(
        self,
        data: JSONBody[ChatRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> ServerSentEvent:
        """The same answer as Server-Sent Events: `delta` events with each verified sentence
        as the model writes, then one `answer` event with the final payload of
        `POST /api/v1/chat`. A failure after the stream began is an `error` event and no
        `answer`: a half answer never passes for a whole one. Refusals of the request itself
        (429, 403, 422) are plain HTTP errors, before any event."""
        started = time.perf_counter()
        patient_id = own_patient_id(db_session, principal)
        context = chat_context(db_session, state, principal)
        inflight.admit(patient_id)  # 429 while their last one is answered; released at the end
        events = inflight.released_after(
            patient_id, service.respond(context, patient_id, data.question, data.conversation_id)
        )
        first = next(events)  # the checks run here, so they fail as plain HTTP errors
        if isinstance(first, service.Delta):  # words of an answer, not a refusal
            first_token(state, started)
        return ServerSentEvent(_messages(first, events), headers={"Cache-Control": "no-store"})

    @post("/voice", status_code=200, request_max_body_size=voice.MAX_BYTES + voice.FORM_OVERHEAD)
    async def voice_question(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> VoiceQuestionPublic:
        """multipart/form-data with an `audio` file (webm/ogg Opus, mp4/AAC, wav...; at most
        2 MB and 60 s) becomes `{"question": text}`. Nothing is answered: the portal shows the
        text and sends it through `/stream`. 413 too big, 415 not audio, 422 corrupt, too long
        or no speech, 429 past 30 an hour. The body is read only once the caller is a patient
        within the limit, and is parsed in memory (Litestar's form parser spools files over
        1 MiB to an unencrypted temporary file)."""

        def admit() -> uuid.UUID:
            patient_id = own_patient_id(db_session, principal)
            voice.admit(db_session, patient_id)
            return patient_id

        patient_id = await anyio.to_thread.run_sync(admit)
        body = await request.body()
        form_type = request.headers.get("content-type", "")
        heard = await anyio.to_thread.run_sync(
            lambda: voice.take_question(
                db_session, state.settings, principal.actor(), patient_id, form_type, body
            )
        )
        return VoiceQuestionPublic(question=heard.text)


class AlertController(Controller):
    """Crisis alerts for staff: the same listing and acknowledgement as the console page."""

    path = "/api/v1/alerts"
    tags = ["chat"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def open_alerts(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> list[alerts.CrisisAlertPublic]:
        """The unacknowledged alerts of the patients the caller may see, the longest waiting
        first: the patient's name and the category, never the patient's words."""
        principal.require(*access.STAFF)
        found = alerts.open_alerts(db_session, state.keystore, principal)
        db_session.commit()
        return found

    @post("/{alert_id:uuid}/acknowledge", status_code=200, sync_to_thread=True)
    def acknowledge(
        self,
        alert_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
    ) -> alerts.Acknowledgement:
        """Idempotent: a repeat keeps the first acknowledgement and says
        `already_acknowledged`. 404 for an alert the caller may not see, as for none."""
        principal.require(*access.STAFF)
        done = alerts.acknowledge(db_session, principal, alert_id)
        db_session.commit()
        return done


def _messages(
    first: service.Delta | ChatResponse, events: Iterator[service.Delta | ChatResponse]
) -> Iterator[ServerSentEventMessage]:
    try:
        for event in itertools.chain([first], events):
            if isinstance(event, service.Delta):
                yield ServerSentEventMessage(data=json.dumps({"text": event.text}), event="delta")
            else:
                yield ServerSentEventMessage(data=event.model_dump_json(), event="answer")
    except DomainError as exc:  # e.g. the model service died mid-answer
        problem = {"status": exc.status_code, "detail": str(exc).splitlines()[0]}
        yield ServerSentEventMessage(data=json.dumps(problem), event="error")
    except Exception as exc:
        logger.error("chat stream failed", extra={"error": type(exc).__name__})
        problem = {"status": 500, "detail": "An internal error occurred."}
        yield ServerSentEventMessage(data=json.dumps(problem), event="error")
