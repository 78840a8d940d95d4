"""Quality guards: find the spans a Whisper model made up.

Whisper fails in two well-known ways: it loops (the same phrase again and again) and it invents
text where nobody spoke ("Thank you for watching."). Such spans stay in the transcript,
highlighted for the therapist, but are marked `low_confidence` so that they are never indexed
or quoted to a patient. The thresholds are Whisper's own fallback thresholds (compression ratio
2.4, no-speech 0.6 with log-probability -1), plus n-gram checks that catch short loops the
compression ratio misses. A later check (alignment) also flags text that falls where the voice
activity detector heard no voice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace

from appliance.pipeline.speech import Segment

COMPRESSION_RATIO_MAX = 2.4
NO_SPEECH_PROB_MAX = 0.6
LOGPROB_MIN = -1.0
WORD_PROBABILITY_MIN = 0.35
# Phrases Whisper is known to produce from silence and noise (its training data's subtitles).
SILENCE_PHRASES = (
    "thank you for watching",
    "thanks for watching",
    "please subscribe",
    "subtitles by",
    "transcribed by",
    "see you in the next video",
    "amara org",
)
_TOKEN = re.compile(r"[\w']+")


def flag_segments(segments: Iterable[Segment]) -> Iterator[Segment]:
    """Yield each segment, with `low_confidence` and its reasons set where a guard fires."""
    recent: list[str] = []
    for segment in segments:
        tokens = _tokens(segment.text)
        flags = list(segment_flags(segment, tokens))
        normalised = " ".join(tokens)
        if len(tokens) >= 3 and normalised in recent:
            flags.append("repeated_segment")
        recent = [*recent[-1:], normalised]
        if flags:
            merged = tuple(dict.fromkeys((*segment.flags, *flags)))
            segment = replace(segment, low_confidence=True, flags=merged)
        yield segment


def segment_flags(segment: Segment, tokens: list[str]) -> Iterator[str]:
    if segment.compression_ratio > COMPRESSION_RATIO_MAX or has_loop(tokens):
        yield "repetition"
    if (segment.no_speech_prob > NO_SPEECH_PROB_MAX and segment.avg_logprob < LOGPROB_MIN) or (
        segment.no_speech_prob > NO_SPEECH_PROB_MAX / 2 and _silence_phrase(tokens)
    ):
        yield "silence"
    if segment.avg_logprob < LOGPROB_MIN or (
        segment.words
        and (sum(w.probability for w in segment.words) / len(segment.words) < WORD_PROBABILITY_MIN)
    ):
        yield "uncertain"
    if not tokens:
        yield "empty"


def has_loop(tokens: list[str]) -> bool:
    """An n-gram (n = 1..6) repeated back to back: 5 times for single words ("no, no, no"
    is speech; five in a row rarely is), 3 times for longer phrases."""
    for n in range(1, 7):
        needed = 5 if n == 1 else 3
        if len(tokens) < n * needed:
            break
        for start in range(len(tokens) - n * needed + 1):
            gram = tokens[start : start + n]
            if all(tokens[start + k * n : start + (k + 1) * n] == gram for k in range(1, needed)):
                return True
    return False


def _silence_phrase(tokens: list[str]) -> bool:
    text = " ".join(tokens)
    return any(phrase in text for phrase in SILENCE_PHRASES)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())
