"""Immutable records and the two small backend protocols of the speech pipeline.

Every backend (faster-whisper, pyannote, the embedded VAD + speaker-embedding diarizer, and
the deterministic fakes in the tests) speaks these records, so the stages, the storage and the
API never see a library type. Audio crosses these interfaces as 16 kHz mono float32 NumPy
arrays (decoded with PyAV), never as a path: recordings exist on disk only encrypted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Audio = npt.NDArray[np.float32]

SAMPLE_RATE = 16000

# Progress callbacks take the seconds of audio consumed so far.
Progress = Callable[[float], None]


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One ASR segment. `low_confidence` spans are kept (the therapist sees them highlighted)
    but are never indexed or quoted to a patient; `flags` says why."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    low_confidence: bool = False
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class TranscriptInfo:
    language: str
    language_probability: float
    duration: float


class Transcriber(Protocol):
    """Speech to text with word timestamps. Segments are yielded as the audio is consumed, so
    a caller can report progress on long recordings."""

    model_id: str

    def transcribe(self, audio: Audio) -> tuple[TranscriptInfo, Iterator[Segment]]: ...


@dataclass(frozen=True)
class SpeakerTurn:
    """A stretch of time in which one speaker talks. Turns of different speakers may overlap."""

    start: float
    end: float
    speaker: str


class Diarizer(Protocol):
    """Who spoke when. Speaker labels are opaque ("SPEAKER_00", ...), stable within one call."""

    model_id: str

    def diarize(self, audio: Audio, progress: Progress | None = None) -> list[SpeakerTurn]: ...


class VoiceEncoder(Protocol):
    """A fixed-size voiceprint of a stretch of speech: the therapist's enrolment and each
    diarized speaker are compared with it to assign roles."""

    model_id: str

    def embed(self, audio: Audio) -> np.ndarray: ...
