"""Deterministic speech backends for domain tests: they record what they were given and return
a scripted two-speaker exchange, scaled to the audio's length."""

from __future__ import annotations

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


@dataclass
class FakeTranscriber:
    model_id: str = "fake-whisper"
    heard: list[int] = field(default_factory=list)  # samples per call

    def transcribe(self, audio: Any) -> tuple[TranscriptInfo, Iterator[Segment]]:
        self.heard.append(len(audio))
        info = TranscriptInfo("en", 0.99, len(audio) / SAMPLE_RATE)

        def segments() -> Iterator[Segment]:
            from appliance.pipeline.guards import flag_segments

            raw = (
                Segment(
                    start, end, text, _words(start, end, text), -0.2, 1.2, 0.7 if not who else 0.1
                )
                for who, start, end, text in SCRIPT
            )
            yield from flag_segments(raw)

        return info, segments()


@dataclass
class FakeDiarizer:
    model_id: str = "fake-diarizer"
    heard: list[int] = field(default_factory=list)

    def diarize(self, audio: Any, progress: Any = None) -> list[SpeakerTurn]:
        self.heard.append(len(audio))
        if progress is not None:
            progress(len(audio) / SAMPLE_RATE)
        return [SpeakerTurn(start, end, who) for who, start, end, _ in SCRIPT if who]


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


@dataclass
class FakeSpeech:
    transcriber: FakeTranscriber = field(default_factory=FakeTranscriber)
    diarizer: FakeDiarizer = field(default_factory=FakeDiarizer)
    encoder: FakeEncoder = field(default_factory=FakeEncoder)

    def pipeline(self) -> dict[str, Stage]:
        stages: list[Stage] = [
            ProbeStage(),
            TranscribeStage(lambda _: self.transcriber),
            DiarizeStage(lambda _: self.diarizer),
            AttributeStage(lambda _: self.encoder),
        ]
        return {stage.name: stage for stage in stages}
