"""Deterministic speech backends for domain tests: they record what they were given and return
a scripted two-speaker exchange, scaled to the audio's length."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.jobs.runner import Stage
from appliance.pipeline.probe import ProbeStage
from appliance.pipeline.speech import (
    SAMPLE_RATE,
    Segment,
    SpeakerTurn,
    TranscriptInfo,
    Word,
)
from appliance.pipeline.speech_stages import AttributeStage, DiarizeStage, TranscribeStage
from appliance.reports.stages import ReportStage
from appliance.retrieval.lexical import tokens
from appliance.retrieval.stages import ChunkStage, EmbedStage
from tests.chat_fakes import FakeChatModel

# (speaker, start, end, text) over a 2-second recording; the last line is a known Whisper
# hallucination that no voice covers.
SCRIPT = (
    ("SPEAKER_00", 0.0, 0.6, "How was your week?"),
    ("SPEAKER_01", 0.7, 1.5, "I walked every morning."),
    (None, 1.6, 2.0, "Thank you for watching."),
)


def _words(start: float, end: float, text: str) -> tuple[Word, ...]:
    pieces = text.split()
    step = (end - start) / len(pieces)
    return tuple(
        Word(round(start + i * step, 3), round(start + (i + 1) * step, 3), piece, 0.9)
        for i, piece in enumerate(pieces)
    )


Line = tuple[str | None, float, float, str]


def scripted(*lines: tuple[str, str], seconds: float = 2.0) -> tuple[Line, ...]:
    """(speaker, text) lines spread evenly over `seconds` of audio."""
    step = seconds / len(lines)
    return tuple(
        (who, round(i * step, 3), round((i + 1) * step - 0.01, 3), text)
        for i, (who, text) in enumerate(lines)
    )


@dataclass
class FakeTranscriber:
    model_id: str = "fake-whisper"
    heard: list[int] = field(default_factory=list)  # samples per call
    script: tuple[Line, ...] = SCRIPT

    def transcribe(self, audio: Any) -> tuple[TranscriptInfo, Iterator[Segment]]:
        self.heard.append(len(audio))
        info = TranscriptInfo("en", 0.99, len(audio) / SAMPLE_RATE)

        def segments() -> Iterator[Segment]:
            from appliance.pipeline.guards import flag_segments

            raw = (
                Segment(
                    start, end, text, _words(start, end, text), -0.2, 1.2, 0.7 if not who else 0.1
                )
                for who, start, end, text in self.script
            )
            yield from flag_segments(raw)

        return info, segments()


@dataclass
class FakeDiarizer:
    model_id: str = "fake-diarizer"
    heard: list[int] = field(default_factory=list)
    script: tuple[Line, ...] = SCRIPT

    def diarize(self, audio: Any, progress: Any = None) -> list[SpeakerTurn]:
        self.heard.append(len(audio))
        if progress is not None:
            progress(len(audio) / SAMPLE_RATE)
        return [SpeakerTurn(start, end, who) for who, start, end, _ in self.script if who]


@dataclass
class FakeEncoder:
    """An enrolment (5 s or more) embeds to [1, 0]; SPEAKER_00's stretch (the first 0.6 s)
    close to it; anything else to [0, 1]-ish."""

    model_id: str = "fake-encoder"
    heard: list[int] = field(default_factory=list)

    def embed(self, audio: Any) -> np.ndarray:
        self.heard.append(len(audio))
        if len(audio) >= 5 * SAMPLE_RATE:
            return np.asarray([1.0, 0.0], dtype=np.float32)
        first = len(audio) <= int(0.6 * SAMPLE_RATE) + 1
        return np.asarray([0.95, 0.05] if first else [0.05, 0.95], dtype=np.float32)


class FakeEmbedder:
    """Hashed bag of words: texts sharing words are close, deterministic, no model. Records
    every text it embedded."""

    def __init__(self, model_id: str = "fake-embedder", dimension: int = 64) -> None:
        self.model_id, self._dimension = model_id, dimension
        self.seen: list[str] = []

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Any) -> np.ndarray:
        self.seen.extend(texts)
        vectors = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in tokens(text):
                digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
                vectors[row, int.from_bytes(digest) % self._dimension] += 1.0
            vectors[row, 0] += 0.01  # never the zero vector
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@dataclass
class FakeSpeech:
    transcriber: FakeTranscriber = field(default_factory=FakeTranscriber)
    diarizer: FakeDiarizer = field(default_factory=FakeDiarizer)
    encoder: FakeEncoder = field(default_factory=FakeEncoder)
    embedders: dict[str, FakeEmbedder] = field(
        default_factory=lambda: {"all-minilm-l6-v2": FakeEmbedder()}
    )

    # The report stage's model: replies nothing, so drafts hold only what the appliance's own
    # detectors find (tests that care about drafting give it a script).
    reporter: Any = field(default_factory=lambda: FakeChatModel(reply=""))

    def say(self, script: tuple[Line, ...]) -> None:
        """What the next recordings contain."""
        self.transcriber.script = self.diarizer.script = script

    def pipeline(self) -> dict[str, Stage]:
        stages: list[Stage] = [
            ProbeStage(),
            TranscribeStage(lambda _: self.transcriber),
            DiarizeStage(lambda _: self.diarizer),
            AttributeStage(lambda _: self.encoder),
            ChunkStage(),
            EmbedStage(self.embedder),
            ReportStage(lambda _: self.reporter),
        ]
        return {stage.name: stage for stage in stages}

    def embedder(self, _: Any, name: str) -> FakeEmbedder:
        """The embedder of a manifest name (what `embedder_for` is in production)."""
        return self.embedders[name]
