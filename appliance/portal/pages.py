"""The patient portal: sign in, ask about your own sessions, hear the cited minute.

Server-rendered and phone-first. Without JavaScript the ask form posts here and the page shows
the saved answer (POST-redirect-GET); with it, `portal.js` streams the same answer from
`POST /api/v1/chat/stream` and records voice questions. The patient is always the one linked
to the signed-in account, never an id from the request.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import EnrolmentRequired, Principal
from appliance.auth.pages import LoginForm, sign_in_from_form, sign_out
from appliance.chat import inflight
from appliance.chat import service as chat
from appliance.chat.controllers import chat_context, own_patient_id
from appliance.clinic.models import Role
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.errors import DomainError, TooManyRequests
from appliance.messages import inbox
from appliance.portal import service
from appliance.web.i18n import long_date
from appliance.web.pages import (
    PAGE_EXCEPTION_HANDLERS,
    PageController,
    SignInRequired,
    page,
    provide_page_principal,
    see_other,
)
from appliance.web.security import SECURITY_HEADERS

FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


class AskForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    question: str = Field(default="", max_length=2000)
    conversation_id: str = Field(default="", max_length=64)


def listen_href(session_id: uuid.UUID, start: float, end: float) -> str:
    return f"/portal/listen/{session_id}?start={start:.2f}&end={end:.2f}"


def elapsed(seconds: float) -> str:
    """How far into the session a moment is: "3:05", "1:02:05". Shown as "3:05 into the
    session", never as "03:05" alone, which reads like a time of day ("00:00", midnight)."""
    hours, rest = divmod(max(0, int(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


async def provide_patient(
    request: Request[Any, Any, Any], db_session: NamedDependency[Session], state: State
) -> Principal:
    """The signed-in principal; staff who open the portal are sent to the console."""
    principal = await provide_page_principal(request, db_session, state)
    if principal.role != Role.patient:
        raise StaffOnPortal
    return principal


class StaffOnPortal(Exception):
    """A staff member opened the portal: their pages are in the console."""


def _to_portal_sign_in(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return see_other("/portal/login")


def _to_console(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return see_other("/console")


class PortalPages(PageController):
    path = "/portal"
    exception_handlers = {
        **PAGE_EXCEPTION_HANDLERS,
        SignInRequired: _to_portal_sign_in,
        EnrolmentRequired: _to_console,
        StaffOnPortal: _to_console,
    }
    dependencies = {"principal": Provide(provide_patient)}

    @get("/login", sync_to_thread=True)
    def login_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "portal_login.html", None, title="Sign in")

    @post("/login", sync_to_thread=True)
    def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, FORM],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        return sign_in_from_form(
            request,
            db_session,
            state,
            data,
            "portal_login.html",
            lambda _: "/portal",
            title="Sign in",
        )

    @get("/", sync_to_thread=True)
    def home(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        fresh: FromQuery[bool] = False,
    ) -> Template:
        """The chat (latest conversation, unless `fresh`) beside the homework list."""
        return self._render(request, principal, db_session, state, fresh=fresh)

    @post("/ask", sync_to_thread=True)
    def ask(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[AskForm, FORM],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        """The no-JavaScript path: the same answer as the API, then back to the page."""
        patient_id = own_patient_id(db_session, principal)
        context = chat_context(db_session, state, principal)
        try:
            conversation = uuid.UUID(data.conversation_id) if data.conversation_id else None
            with inflight.one_question(patient_id):
                chat.answer(context, patient_id, data.question, conversation_id=conversation)
        except (DomainError, ValueError) as refused:
            db_session.rollback()
            status = refused.status_code if isinstance(refused, DomainError) else 422
            template = self._render(
                request, principal, db_session, state, status=status, error=str(refused)
            )
            if isinstance(refused, TooManyRequests):
                template.headers["Retry-After"] = str(refused.retry_after)
            return template
        return see_other("/portal#answer")

    @get("/listen/{session_id:uuid}", sync_to_thread=True)
    def listen(
        self,
        session_id: FromPath[uuid.UUID],
        start: FromQuery[float],
        end: FromQuery[float],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[bytes]:
        """The cited minute as WAV: decrypted in memory, for the owning patient only."""
        patient_id = own_patient_id(db_session, principal)
        wav = service.cited_clip(
            db_session,
            state.settings,
            state.keystore,
            principal.actor(),
            patient_id,
            session_id,
            start,
            end,
        )
        return Response(wav, media_type="audio/wav", headers=SECURITY_HEADERS)

    @post("/logout", sync_to_thread=True)
    def logout(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        return sign_out(request, principal, db_session, state, then="/portal/login")

    def _render(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        db_session: Session,
        state: State,
        *,
        fresh: bool = False,
        status: int = 200,
        error: str | None = None,
    ) -> Template:
        patient_id = own_patient_id(db_session, principal)
        store = state.keystore
        history = (
            service.History(None, ())
            if fresh
            else service.latest_conversation(db_session, store, patient_id)
        )
        homework = service.homework(db_session, store, principal.actor(), patient_id)
        may_ask = consent.is_granted(db_session, patient_id, Purpose.patient_chat)
        messages = inbox.inbox(db_session, store, principal.actor(), patient_id)
        db_session.commit()
        return page(
            request,
            "portal.html",
            principal,
            status_code=status,
            title="Ask about your sessions",
            history=history,
            homework=homework,
            may_ask=may_ask,
            inbox=messages,
            zone=ZoneInfo(state.settings.clinic.timezone),
            error=error,
            long_date=long_date,
            clock=elapsed,
            listen_href=listen_href,
        )
