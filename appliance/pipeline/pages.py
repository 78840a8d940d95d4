"""Console: a session's transcript with speakers, roles, times and low-confidence spans, and
the therapist's relabelling form."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import Principal
from appliance.clinic import access
from appliance.clinic.models import Role as UserRole
from appliance.pipeline import exports, transcripts
from appliance.pipeline.controllers import read_transcript
from appliance.pipeline.schemas import Role, TranscriptPending
from appliance.recordings import service as sessions
from appliance.web.pages import PageController, page, see_other


class RelabelForm(SQLModel):
    csrf_token: str = Field(default="", max_length=128)
    speaker: str = Field(max_length=40)
    role: Role


class TranscriptPages(PageController):
    path = "/console/sessions/{session_id:uuid}"

    @get("/transcript", sync_to_thread=True)
    def show(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        done: FromQuery[str | None] = None,
    ) -> Template:
        found = read_transcript(db_session, state, principal, session_id)
        pending = isinstance(found, TranscriptPending)
        return page(
            request,
            "transcript.html",
            principal,
            title="Transcript",
            session_id=session_id,
            transcript=None if pending else found,
            pending=found if pending else None,
            refresh_seconds=5 if pending else None,
            names=exports.NAMES,
            clock=lambda seconds: f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}",
            notice="Speaker relabelled." if done == "relabel" else None,
        )

    @post("/speakers", sync_to_thread=True)
    def relabel(
        self,
        session_id: FromPath[uuid.UUID],
        data: Annotated[RelabelForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(UserRole.therapist)
        row = sessions.get_session(db_session, access.visible_patient_ids(principal), session_id)
        transcripts.relabel(
            db_session, state.keystore, principal.actor(), row, data.speaker, data.role
        )
        db_session.commit()
        return see_other(f"/console/sessions/{session_id}/transcript?done=relabel")
