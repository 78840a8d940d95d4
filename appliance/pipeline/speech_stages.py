"""The speech stages: transcribe -> diarize -> attribute (words to speakers, speakers to roles).

Each stage decodes the recording itself (decoding is fast next to inference, and it keeps every
stage independently retryable), computes outside any transaction while reporting progress,
and saves one sealed document keyed by (recording, version). Backends are injected, so the
domain tests run the real stages with deterministic fakes and other tests with real models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select

from appliance.consent.models import Purpose
from appliance.crypto.service import patient_cipher
from appliance.jobs.runner import PermanentError, StageContext
from appliance.pipeline import backends, documents
from appliance.pipeline.align import Utterance, align
from appliance.pipeline.models import Attribution, Diarization, Transcript
from appliance.pipeline.roles import SpeakerRole, assign_roles, speaker_prints
from appliance.pipeline.speech import SAMPLE_RATE, Segment, SpeakerTurn, TranscriptInfo
from appliance.pipeline.voices import therapist_voiceprint
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.pipeline.speech import Audio, Diarizer, Transcriber, VoiceEncoder


class _Progress:
    """Reports whole percents only, so a long recording renews its lease ~100 times, not
    once per segment."""

    def __init__(self, context: StageContext, total_seconds: float) -> None:
        self.context, self.total, self.last = context, max(total_seconds, 0.001), -1

    def __call__(self, seconds: float) -> None:
        percent = min(99, int(100 * seconds / self.total))
        if percent > self.last:
            self.last = percent
            self.context.report(percent)


def latest(session: Session, model: Any, recording_id: Any) -> Any:
    """A recording's newest output of a stage (outputs are kept per version)."""
    return session.exec(
        select(model)
        .where(model.recording_id == recording_id)
        .order_by(col(model.created_at).desc())
        .limit(1)
    ).first()


def _decoded(context: StageContext) -> Audio:
    with context.open_recording() as reader:
        return backends.decode(reader)


def _save(
    session: Session, context: StageContext, model: Any, version: str, document: Any, **columns: Any
) -> None:
    """Insert the stage's sealed output once (a second run of the stage writes nothing)."""
    recording = context.recording
    cipher = patient_cipher(context.store, recording.patient_id)
    table = model.__tablename__
    values = {
        "recording_id": recording.id,
        "version": version,
        "patient_id": recording.patient_id,
        "body_enc": documents.seal(cipher, table, recording.id, document),
        **columns,
    }
    session.execute(insert(model).values(**values).on_conflict_do_nothing())


@dataclass(frozen=True)
class Transcribed:
    info: TranscriptInfo
    segments: list[Segment]
    model_id: str


class TranscribeStage:
    name = "transcribe"
    purpose = Purpose.transcription
    after: str | None = "probe"
    version = "transcribe-1"

    def __init__(self, transcriber: Callable[[Settings], Transcriber] | None = None) -> None:
        self.transcriber = transcriber or backends.transcriber_for

    def run(self, context: StageContext) -> Transcribed:
        audio = _decoded(context)
        transcriber = self.transcriber(context.settings)
        report = _Progress(context, len(audio) / SAMPLE_RATE)
        info, generated = transcriber.transcribe(audio)
        segments = []
        for segment in generated:  # a generator: progress follows the decoder
            segments.append(segment)
            report(segment.end)
        return Transcribed(info, segments, transcriber.model_id)

    def save(self, session: Session, context: StageContext, output: Transcribed) -> None:
        segments = output.segments
        _save(
            session,
            context,
            Transcript,
            self.version,
            {"segments": documents.segments_doc(segments)},
            model_id=output.model_id,
            language=output.info.language,
            language_probability=output.info.language_probability,
            duration_seconds=output.info.duration,
            segment_count=len(segments),
            word_count=sum(len(s.words) for s in segments),
            low_confidence_count=sum(s.low_confidence for s in segments),
        )


@dataclass(frozen=True)
class Diarized:
    turns: list[SpeakerTurn]
    model_id: str


class DiarizeStage:
    name = "diarize"
    purpose = Purpose.transcription
    after: str | None = "transcribe"
    version = "diarize-1"

    def __init__(self, diarizer: Callable[[Settings], Diarizer] | None = None) -> None:
        self.diarizer = diarizer or backends.diarizer_for

    def run(self, context: StageContext) -> Diarized:
        audio = _decoded(context)
        diarizer = self.diarizer(context.settings)
        turns = diarizer.diarize(audio, _Progress(context, len(audio) / SAMPLE_RATE))
        return Diarized(sorted(turns, key=lambda t: (t.start, t.end)), diarizer.model_id)

    def save(self, session: Session, context: StageContext, output: Diarized) -> None:
        _save(
            session,
            context,
            Diarization,
            self.version,
            documents.turns_doc(output.turns),
            model_id=output.model_id,
            speaker_count=len({t.speaker for t in output.turns}),
        )


@dataclass(frozen=True)
class Attributed:
    utterances: list[Utterance]
    roles: list[SpeakerRole]


class AttributeStage:
    """Aligns words to speakers and decides roles (voiceprint of the session's therapist)."""

    name = "attribute"
    purpose = Purpose.transcription
    after: str | None = "diarize"
    version = "attribute-1"

    def __init__(self, encoder: Callable[[Settings], VoiceEncoder] | None = None) -> None:
        self.encoder = encoder or backends.voice_encoder_for

    def run(self, context: StageContext) -> Attributed:
        recording = context.recording
        cipher = patient_cipher(context.store, recording.patient_id)

        def inputs(session: Session) -> tuple[Any, Any, Any]:
            transcript = latest(session, Transcript, recording.id)
            diarization = latest(session, Diarization, recording.id)
            voice = therapist_voiceprint(session, context.store, recording.session_id)
            return transcript, diarization, voice

        transcript, diarization, voice = context.read(inputs)
        if transcript is None or diarization is None:
            raise PermanentError("the transcript or the diarization is missing")
        segments = documents.segments_from(
            documents.open_sealed(cipher, "transcripts", recording.id, transcript.body_enc)[
                "segments"
            ]
        )
        turns = documents.turns_from(
            documents.open_sealed(cipher, "diarizations", recording.id, diarization.body_enc)
        )
        utterances = align(segments, turns)
        context.report(30)
        prints = {}
        if voice is not None and turns:
            encoder = self.encoder(context.settings)
            if encoder.model_id == voice.model_id:  # voiceprints of other models don't compare
                prints = speaker_prints(_decoded(context), turns, encoder)
        roles = assign_roles(
            turns,
            prints,
            voice.embedding if voice is not None else None,
            context.settings.diarization.therapist_similarity,
        )
        return Attributed(utterances, roles)

    def save(self, session: Session, context: StageContext, output: Attributed) -> None:
        _save(
            session,
            context,
            Attribution,
            self.version,
            documents.attribution_doc(output.utterances, output.roles),
            speaker_count=len(output.roles),
            utterance_count=len(output.utterances),
        )
