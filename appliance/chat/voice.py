"""The patient's voice question: a short recording made in the portal, turned into text.

The audio is transcribed here, on the appliance, by the same faster-whisper backend as the
session pipeline (`pipeline.backends.transcriber_for`), so voice questions need no model of
their own and nothing leaves the box. The text is not answered here: the portal shows it in
the question box and the patient sends it through the normal chat, so they see what was heard
before anything is answered.

The audio lives only in memory. The multipart form is parsed from the in-memory body (Litestar's
own form parser spools files over 1 MiB to an unencrypted temporary file), decoded by PyAV from
bytes, and dropped when the request ends. Neither the text nor the audio is logged: the audit
row holds the patient id, the duration and the size only.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session

from appliance.audit.service import Actor, AuditEntry, record
from appliance.auth import throttle
from appliance.errors import DomainError, Invalid
from appliance.recordings.probe import (
    AudioInfo,
    CorruptAudio,
    EmptyUpload,
    NotAudio,
    TooLarge,
    probe,
)
from appliance.settings import Settings, TranscriptionSettings

if TYPE_CHECKING:
    from appliance.pipeline.speech import Audio, Segment, Transcriber

logger = logging.getLogger("appliance.chat")

MAX_BYTES = 2 * 1024 * 1024  # a minute of browser Opus is ~0.5 MB, of Safari's AAC ~1-2 MB
MAX_SECONDS = 60.0
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and part headers around the audio
FIELD = "audio"
VOICE_PER_HOUR = 30  # separate from the chat's questions_per_hour: hearing is not answering
# A transcription waits this long for the one before it; past that the caller retries (503).
BUSY_WAIT_SECONDS = 30.0
# Container MIME types a browser's MediaRecorder (or a file picker) sends for audio.
_MEDIA_TYPES = ("audio/", "video/")
_GENERIC_TYPES = ("", "application/octet-stream")
# Guards that mean "not speech" (silence hallucinations, loops); "uncertain" text is kept,
# because the patient reads it before sending.
_DROPPED_FLAGS = frozenset({"silence", "repetition", "empty"})
_SPACE = re.compile(r"\s+")

_transcribers: dict[tuple[str, TranscriptionSettings], Transcriber] = {}
_cache_lock = threading.Lock()
_busy = threading.Lock()


class QuestionTooLong(Invalid):
    """More than MAX_SECONDS of audio (422): a question, not a monologue."""


class NoSpeech(Invalid):
    """The audio decoded but nothing was said in it (422)."""


class VoiceUnavailable(DomainError):
    """The transcription model is missing or busy (503); `retry_after` when busy."""

    status_code = 503
    title = "Service Unavailable"

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after


@dataclass(frozen=True)
class Heard:
    text: str
    duration_seconds: float


def audio_from_form(content_type: str, body: bytes) -> tuple[bytes, str]:
    """The `audio` file part of a multipart/form-data body, and its declared content type.

    Parsed in memory with the `multipart` package (the parser Litestar itself uses)."""
    import multipart  # type: ignore[import-untyped]

    kind, options = multipart.parse_options_header(content_type or "")
    if kind != "multipart/form-data" or not options.get("boundary"):
        raise NotAudio(f"send multipart/form-data with an `{FIELD}` file field")
    found: bytearray | None = None
    part_type = ""
    current: bytearray | None = None
    try:
        with multipart.PushMultipartParser(options["boundary"], max_segment_count=16) as parser:
            for event in parser.parse(body):
                if isinstance(event, multipart.MultipartSegment):
                    current = None
                    if event.name == FIELD and found is None:
                        current = found = bytearray()
                        part_type = event.content_type or ""
                elif event and current is not None:
                    current.extend(event)
    except multipart.MultipartError:  # leaving `with` checks the form was complete
        raise Invalid("the form data is malformed") from None
    if found is None:
        raise Invalid(f"the form has no `{FIELD}` file")
    return bytes(found), part_type


def transcribe_question(settings: Settings, audio_bytes: bytes, content_type: str) -> str:
    """The words of a short spoken question, whitespace collapsed (see `hear`)."""
    return hear(settings, audio_bytes, content_type).text


def hear(settings: Settings, audio_bytes: bytes, content_type: str) -> Heard:
    """Validate, decode and transcribe a short recording.

    Errors, all RFC 7807 through `DomainError`: 400 empty; 413 over MAX_BYTES; 415 not an
    audio container (decided by the bytes, the declared type only refuses obvious non-audio
    early); 422 corrupt, longer than MAX_SECONDS, or no speech heard; 503 model missing or
    busy."""
    if not audio_bytes:
        raise EmptyUpload("the recording is empty")
    if len(audio_bytes) > MAX_BYTES:
        raise TooLarge(f"a voice question is limited to {MAX_BYTES // (1024 * 1024)} MB")
    declared = content_type.split(";")[0].strip().lower()
    if declared not in _GENERIC_TYPES and not declared.startswith(_MEDIA_TYPES):
        raise NotAudio("the upload is not an audio recording")
    info = _probe(audio_bytes)
    from appliance.jobs.runner import PermanentError
    from appliance.pipeline.backends import decode

    try:
        audio = decode(io.BytesIO(audio_bytes))  # 16 kHz mono, resampled by PyAV in memory
    except PermanentError:  # the probe decoded it, so this is a decoder disagreement
        raise CorruptAudio("the recording does not decode") from None
    started = time.perf_counter()
    text = _words(_transcribe(settings, audio))
    logger.info(
        "voice question transcribed",
        extra={
            "audio_seconds": info.duration_seconds,
            "elapsed_ms": round((time.perf_counter() - started) * 1000),
            "chars": len(text),
        },
    )
    if not text:
        raise NoSpeech("no speech was heard in the recording; please try again")
    return Heard(text, info.duration_seconds)


def admit(session: Session, patient_id: uuid.UUID) -> None:
    """Count the attempt against the patient's hourly voice limit (429 past it), before the
    body is read, so refused callers cost no decoding. Commits the counter."""
    throttle.enforce(session, f"chat.voice:{patient_id}", VOICE_PER_HOUR, 3600)


def take_question(
    session: Session,
    settings: Settings,
    actor: Actor,
    patient_id: uuid.UUID,
    form_type: str,
    body: bytes,
) -> Heard:
    """The endpoint's work after `admit`: the form's audio heard, and `chat.voice` audited
    (patient, duration and size, never the words) and committed."""
    audio, declared = audio_from_form(form_type, body)
    heard = hear(settings, audio, declared)
    record(
        session,
        actor,
        AuditEntry(
            "chat.voice",
            "success",
            "patient",
            str(patient_id),
            patient_id,
            {"duration_seconds": heard.duration_seconds, "bytes": len(audio)},
        ),
    )
    session.commit()
    return heard


def transcriber(settings: Settings) -> Transcriber:
    """The process's transcriber for this model and configuration, created on first use.

    Loading the model takes seconds, so it is kept for the life of the web process; the
    model weights themselves load on the first transcription (and are shared with any other
    user of the same backend in this process)."""
    key = (str(settings.resolved_models_dir / settings.transcription.model), settings.transcription)
    with _cache_lock:
        found = _transcribers.get(key)
        if found is None:
            from appliance.pipeline.backends import transcriber_for

            found = _transcribers[key] = transcriber_for(settings)
        return found


def _probe(audio_bytes: bytes) -> AudioInfo:
    """The upload probe (magic bytes, then a full decode), with our own too-long error."""
    try:
        return probe(io.BytesIO(audio_bytes), audio_bytes[:16], MAX_SECONDS)
    except CorruptAudio:
        raise
    except Invalid:  # the probe's only other Invalid is its duration limit
        raise QuestionTooLong(f"a voice question is limited to {MAX_SECONDS:.0f} seconds") from None


def _transcribe(settings: Settings, audio: Audio) -> list[Segment]:
    """One transcription at a time per process: concurrent ones would only share the same
    cores (and each holds its own decoder memory), so later callers wait, then get 503."""
    from appliance.pipeline.whisper import ModelMissing

    backend = transcriber(settings)
    if not _busy.acquire(timeout=BUSY_WAIT_SECONDS):
        raise VoiceUnavailable("voice questions are busy; please try again", retry_after=5)
    try:
        _, segments = backend.transcribe(audio)
        return list(segments)
    except ModelMissing:
        logger.error("voice question: transcription model missing")
        raise VoiceUnavailable("voice questions are not available on this appliance") from None
    finally:
        _busy.release()


def _words(segments: Iterable[Segment]) -> str:
    """The heard text: segments the guards call silence or a loop are dropped (Whisper
    invents such text from noise), the rest joined with whitespace collapsed."""
    kept = (s.text for s in segments if not _DROPPED_FLAGS.intersection(s.flags))
    return _SPACE.sub(" ", " ".join(kept)).strip()
