"""Transcripts, speaker relabels and voice enrolment over HTTP. Thin: the services decide."""

from __future__ import annotations

import io
import uuid
from typing import Annotated, Any, Literal

import anyio
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlmodel import Session

from appliance.auth.guards import Principal, provide_principal
from appliance.clinic import access
from appliance.clinic.models import Role
from appliance.errors import Invalid
from appliance.pipeline import exports, transcripts, voices
from appliance.pipeline.schemas import (
    RelabelRequest,
    TranscriptPending,
    TranscriptPublic,
    VoicePublic,
)
from appliance.recordings import service as sessions

MAX_ENROLMENT_BYTES = 20 * 1024 * 1024


def read_transcript(
    db_session: Session, state: State, principal: Principal, session_id: uuid.UUID
) -> TranscriptPublic | TranscriptPending:
    """A therapist of the patient only: transcripts are clinical notes' raw material."""
    principal.require(Role.therapist)
    visible = access.visible_patient_ids(principal)
    row = sessions.get_session(
        db_session, visible, session_id, principal.actor(), "transcript.read"
    )
    found = transcripts.read(db_session, state.keystore, principal.actor(), row)
    db_session.commit()
    return found


def enrol_voice(
    db_session: Session, state: State, principal: Principal, audio: bytes
) -> VoicePublic:
    """Enrol the principal's voice from `audio` (runs the speaker encoder: call off the loop)."""
    if not audio:
        raise Invalid("send a recording of your voice")
    from appliance.pipeline.backends import voice_encoder_for

    encoder = voice_encoder_for(state.settings)
    done = voices.enrol(db_session, state.keystore, encoder, principal.actor(), io.BytesIO(audio))
    db_session.commit()
    return VoicePublic(**done.__dict__)


class TranscriptController(Controller):
    path = "/api/v1/sessions"
    tags = ["transcripts"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/{session_id:uuid}/transcript", sync_to_thread=True)
    def transcript(
        self,
        session_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        format: Annotated[Literal["json", "vtt", "srt", "txt"], QueryParameter()] = "json",
    ) -> Response[Any]:
        """Segments with speaker, role, words and confidence (202 while processing). `format`
        exports WebVTT, SRT or plain text instead."""
        found = read_transcript(db_session, state, principal, session_id)
        if isinstance(found, TranscriptPending):
            return Response(found, status_code=HTTP_202_ACCEPTED)
        if format == "json":
            return Response(found)
        return Response(
            exports.EXPORTERS[format](found),
            media_type=exports.MEDIA_TYPES[format],
            headers={
                "Content-Disposition": f'attachment; filename="transcript-{session_id}.{format}"'
            },
        )

    @post("/{session_id:uuid}/speakers", sync_to_thread=True)
    def relabel(
        self,
        session_id: FromPath[uuid.UUID],
        data: JSONBody[RelabelRequest],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> dict[str, list[str]]:
        """Set a speaker's role; stages after `attribute` run again (not ASR or diarization)."""
        principal.require(Role.therapist)
        visible = access.visible_patient_ids(principal)
        row = sessions.get_session(
            db_session, visible, session_id, principal.actor(), "speakers.relabel"
        )
        requeued = transcripts.relabel(
            db_session, state.keystore, principal.actor(), row, data.speaker, data.role
        )
        db_session.commit()
        return {"requeued": requeued}


class VoiceController(Controller):
    """A therapist's own voice enrolment (used to label the therapist in their sessions)."""

    path = "/api/v1/me/voice"
    tags = ["voice"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def status(
        self, principal: NamedDependency[Principal], db_session: NamedDependency[Session]
    ) -> VoicePublic:
        principal.require(Role.therapist)
        assert principal.user_id is not None
        return VoicePublic(**voices.status(db_session, principal.user_id).__dict__)

    @put("/", request_max_body_size=MAX_ENROLMENT_BYTES)
    async def enrol(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> VoicePublic:
        """The raw body is a short recording of the therapist speaking (5 s to 3 min)."""
        principal.require(Role.therapist)
        body = await request.body()
        return await anyio.to_thread.run_sync(enrol_voice, db_session, state, principal, body)

    @delete("/", sync_to_thread=True)
    def withdraw(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> None:
        principal.require(Role.therapist)
        voices.withdraw(db_session, state.keystore, principal.actor())
        db_session.commit()
