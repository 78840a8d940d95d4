"""The `report` stage: after a recording's speakers are attributed, the local model drafts the
session's report (from every recording of the session transcribed so far).

It needs `ai_analysis` consent. The model is reached through `appliance llm` like the chat;
when that service is down the job fails and retries after its backoff, so a draft appears
once the service is back. Relabelling speakers re-queues it (it runs after `attribute`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session

from appliance.chat.llm import ChatModel
from appliance.clinic.preferences import effective_settings
from appliance.consent.models import Purpose
from appliance.errors import NotFound
from appliance.jobs.runner import PermanentError, StageContext
from appliance.pipeline.schemas import SegmentPublic
from appliance.pipeline.transcripts import session_segments
from appliance.recordings.models import TherapySession
from appliance.reports import profiles, service
from appliance.reports.document import Line, NoteFormat
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.reports.draft import Drafted, Profile


def service_model(settings: Settings) -> ChatModel:
    from appliance.chat.llm import LlamaServiceClient

    return LlamaServiceClient.from_settings(settings)


@dataclass(frozen=True)
class _Inputs:
    lines: list[Line]
    profile: Profile | None


def lines_of(segments: Sequence[SegmentPublic]) -> list[Line]:
    """The transcript as the drafter sees it: confident utterances, speakers by role."""
    return [
        Line(s.start, s.end, s.role or s.speaker or "unknown", s.text.strip())
        for s in segments
        if not s.low_confidence and s.text.strip()
    ]


class ReportStage:
    name = "report"
    purpose = Purpose.ai_analysis
    after: str | None = "attribute"
    version = "report-1"

    def __init__(self, model: Callable[[Settings], ChatModel] | None = None) -> None:
        self.model = model or service_model

    def run(self, context: StageContext) -> Drafted:
        from appliance.reports.draft import draft_report

        def inputs(session: Session) -> _Inputs:
            row = session.get(TherapySession, context.recording.session_id)
            if row is None:
                raise NotFound("no such session")
            lines = lines_of(session_segments(session, context.store, row))
            return _Inputs(lines, profiles.writing_profile(session, row.therapist_id))

        found: _Inputs = context.read(inputs)
        if not found.lines:
            raise PermanentError("the transcript has no confident speech to draft a report from")
        settings = context.settings
        return draft_report(
            found.lines,
            self.model(settings),
            profile=found.profile,
            max_tokens=settings.reports.max_tokens,
            context_tokens=settings.llm.n_ctx,
            progress=context.report,
        )

    def save(self, session: Session, context: StageContext, output: Drafted) -> None:
        row = session.get(TherapySession, context.recording.session_id)
        if row is None:
            raise NotFound("no such session")
        service.store_draft(
            session,
            context.store,
            row,
            output.report,
            # The clinic's note format as the console has it now (not when the worker started).
            note_format=NoteFormat(
                effective_settings(context.settings, session).reports.note_format
            ),
            model_id=output.model_id,
            prompt_hash=output.prompt_hash,
        )
