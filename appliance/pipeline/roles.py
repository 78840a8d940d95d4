"""Speaker roles: which diarized speaker is the therapist, which the patient.

With an enrolled voiceprint the answer is measured: the speaker whose voice is most similar to
the therapist's enrolment, if similar enough, is the therapist. Without one, the appliance
guesses from talk time (in individual therapy the patient usually talks more) and says so with
a low confidence, so the transcript view asks the therapist to check. Either way the therapist
can relabel; a relabel wins over any guess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.pipeline.speech import SAMPLE_RATE, SpeakerTurn

if TYPE_CHECKING:
    import numpy as np

    from appliance.pipeline.speech import Audio, VoiceEncoder

ROLES = ("therapist", "patient", "other")
GUESS_CONFIDENCE = 0.5
MAX_PRINT_SECONDS = 60.0  # enough speech for a stable voiceprint; bounds the work per speaker


@dataclass(frozen=True)
class SpeakerRole:
    speaker: str
    role: str
    confidence: float
    seconds: float
    source: str  # voiceprint | talk_time | therapist (a relabel)
    similarity: float | None = None


def speaking_time(turns: Sequence[SpeakerTurn]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for turn in turns:
        seconds[turn.speaker] = seconds.get(turn.speaker, 0.0) + (turn.end - turn.start)
    return seconds


def speaker_prints(
    audio: Audio, turns: Sequence[SpeakerTurn], encoder: VoiceEncoder
) -> dict[str, np.ndarray]:
    """A voiceprint per speaker from (up to a minute of) their longest turns."""
    import numpy as np

    prints: dict[str, np.ndarray] = {}
    for speaker in speaking_time(turns):
        mine = sorted(
            (t for t in turns if t.speaker == speaker), key=lambda t: t.start - t.end
        )  # longest first
        pieces, total = [], 0.0
        for turn in mine:
            if total >= MAX_PRINT_SECONDS:
                break
            pieces.append(audio[int(turn.start * SAMPLE_RATE) : int(turn.end * SAMPLE_RATE)])
            total += turn.end - turn.start
        speech = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        if len(speech) >= SAMPLE_RATE // 2:
            prints[speaker] = encoder.embed(speech)
    return prints


def assign_roles(
    turns: Sequence[SpeakerTurn],
    prints: Mapping[str, np.ndarray],
    therapist_print: np.ndarray | None,
    threshold: float,
) -> list[SpeakerRole]:
    seconds = speaking_time(turns)
    by_time = sorted(seconds, key=lambda s: -seconds[s])
    if not by_time:
        return []
    similarity = {
        speaker: _cosine(print_, therapist_print)
        for speaker, print_ in prints.items()
        if therapist_print is not None
    }
    best = max(similarity, key=lambda s: similarity[s]) if similarity else None
    if best is not None and similarity[best] >= threshold:
        sure = _scale(similarity[best], threshold)
        roles = [
            SpeakerRole(best, "therapist", sure, seconds[best], "voiceprint", similarity[best])
        ]
        others = [s for s in by_time if s != best]
        for rank, speaker in enumerate(others):
            sim = similarity.get(speaker)
            apart = 1.0 if sim is None else min(1.0, max(0.0, (threshold - sim) / threshold))
            role = "patient" if rank == 0 else "other"
            confidence = round(min(sure, 0.5 + 0.5 * apart) * (1.0 if rank == 0 else 0.8), 3)
            roles.append(
                SpeakerRole(speaker, role, confidence, seconds[speaker], "voiceprint", sim)
            )
        return roles
    # No enrolment (or no voice like it): the patient usually talks most.
    guessed = ["patient", "therapist"] + ["other"] * max(0, len(by_time) - 2)
    return [
        SpeakerRole(speaker, role, GUESS_CONFIDENCE, seconds[speaker], "talk_time")
        for speaker, role in zip(by_time, guessed, strict=False)
    ]


def _scale(similarity: float, threshold: float) -> float:
    """Map [threshold, 1] to a confidence in [0.6, 1]."""
    span = max(1e-6, 1.0 - threshold)
    return round(min(1.0, 0.6 + 0.4 * (similarity - threshold) / span), 3)


def _cosine(a: np.ndarray, b: np.ndarray | None) -> float:
    import numpy as np

    if b is None:
        return 0.0
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b)) or 1e-9
    return round(float(np.dot(a, b)) / denominator, 4)
