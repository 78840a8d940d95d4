"""Console: a session's transcript with speakers, roles, times and low-confidence spans, and
the therapist's relabelling form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from litestar import Request, Response, get, post
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template
from sqlmodel import Field, Session, SQLModel

from appliance.auth.guards import Principal
from appliance.clinic import access
from appliance.clinic.models import Role as UserRole
from appliance.pipeline import exports, talktime, transcripts, voices
from appliance.pipeline.controllers import MAX_ENROLMENT_BYTES, enrol_voice, read_transcript
from appliance.pipeline.schemas import Role, TranscriptPending
from appliance.recordings import playback
from appliance.recordings import service as sessions
from appliance.web.i18n import _
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
        """The transcript beside a player of the recording (click a word or a time to hear
        it), with the talk-time chart; reads fine without JavaScript."""
        found = read_transcript(db_session, state, principal, session_id)
        if isinstance(found, TranscriptPending):
            return page(
                request,
                "transcript.html",
                principal,
                title=_("Transcript"),
                session_id=session_id,
                transcript=None,
                pending=found,
                refresh_seconds=5,
            )
        row = sessions.get_session(db_session, access.visible_patient_ids(principal), session_id)
        return page(
            request,
            "transcript.html",
            principal,
            title=_("Transcript"),
            session_id=session_id,
            transcript=found,
            pending=None,
            names=exports.NAMES,
            clock=exports.minute_clock,
            audio=[
                {
                    "src": f"/console/sessions/{session_id}/recordings/{part.recording.id}/audio",
                    "offset": part.offset,
                    "duration": part.recording.duration_seconds,
                }
                for part in playback.parts(db_session, row)
            ],
            words_of=lambda seg: [[w.start, w.end, w.text.strip()] for w in seg.words],
            talk=talktime.talk_time(found.segments, found.duration),
            chart=talktime,
            notice=_("Speaker relabelled.") if done == "relabel" else None,
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
        visible = access.visible_patient_ids(principal)
        row = sessions.get_session(
            db_session, visible, session_id, principal.actor(), "speakers.relabel"
        )
        transcripts.relabel(
            db_session, state.keystore, principal.actor(), row, data.speaker, data.role
        )
        db_session.commit()
        return see_other(f"/console/sessions/{session_id}/transcript?done=relabel")


@dataclass
class VoiceForm:
    recording: UploadFile
    csrf_token: str = ""


class VoicePages(PageController):
    """A therapist's own voice enrolment (the form twin of /api/v1/me/voice)."""

    path = "/console/voice"

    @get("/", sync_to_thread=True)
    def show(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(UserRole.therapist)
        assert principal.user_id is not None
        return page(
            request,
            "voice.html",
            principal,
            title="My voice",
            voice=voices.status(db_session, principal.user_id),
            notice=VOICE_NOTICES.get(done or ""),
        )

    @post("/", request_max_body_size=MAX_ENROLMENT_BYTES)
    async def enrol(
        self,
        data: Annotated[VoiceForm, Body(media_type=RequestEncodingType.MULTI_PART)],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(UserRole.therapist)
        audio = await data.recording.read()
        await anyio.to_thread.run_sync(enrol_voice, db_session, state, principal, audio)
        return see_other("/console/voice?done=enrolled")

    @post("/withdraw", sync_to_thread=True)
    def withdraw(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(UserRole.therapist)
        voices.withdraw(db_session, state.keystore, principal.actor())
        db_session.commit()
        return see_other("/console/voice?done=withdrawn")


VOICE_NOTICES = {"enrolled": "Your voice is enrolled.", "withdrawn": "Your voiceprint is deleted."}
