"""Word-to-speaker alignment: give every transcribed word the speaker who was talking.

ASR and diarization disagree at the edges by a few hundred milliseconds, and people talk over
each other. Each word goes to the speaker whose turns overlap it most; a word in overlapping
speech is marked `overlap` (still given to the dominant speaker); a word that no turn covers
goes to the nearest turn within `NEAREST_SECONDS`. A segment in which no word touches a voiced
turn is text the voice activity detector never heard: it is marked low-confidence (`no_voice`),
the classic Whisper hallucination in silence. Segments are then split where the speaker changes
into utterances, the unit the transcript view, the exports and retrieval use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from appliance.pipeline.speech import Segment, SpeakerTurn, Word

NEAREST_SECONDS = 1.0
OVERLAP_SHARE = 0.5  # a second speaker covering half the word makes it overlapped speech


@dataclass(frozen=True)
class AlignedWord:
    start: float
    end: float
    text: str
    probability: float
    speaker: str | None
    overlap: bool = False


@dataclass(frozen=True)
class Utterance:
    """A stretch of one speaker's words within one ASR segment."""

    start: float
    end: float
    speaker: str | None
    text: str
    words: tuple[AlignedWord, ...]
    confidence: float  # mean word probability
    low_confidence: bool
    flags: tuple[str, ...]


def speaker_of(word: Word, turns: Sequence[SpeakerTurn]) -> tuple[str | None, bool, bool]:
    """(speaker, overlapped, voiced) for one word."""
    covered: dict[str, float] = {}
    for turn in turns:
        shared = min(word.end, turn.end) - max(word.start, turn.start)
        if shared > 0:
            covered[turn.speaker] = covered.get(turn.speaker, 0.0) + shared
    if covered:
        ranked = sorted(covered.items(), key=lambda item: -item[1])
        length = max(word.end - word.start, 1e-3)
        overlapped = len(ranked) > 1 and ranked[1][1] >= OVERLAP_SHARE * length
        return ranked[0][0], overlapped, True
    nearest, distance = None, NEAREST_SECONDS
    for turn in turns:
        gap = max(turn.start - word.end, word.start - turn.end)
        if gap <= distance:
            nearest, distance = turn.speaker, gap
    return nearest, False, False


def align(segments: Iterable[Segment], turns: Sequence[SpeakerTurn]) -> list[Utterance]:
    ordered = sorted(turns, key=lambda turn: turn.start)
    utterances: list[Utterance] = []
    previous: str | None = None
    for segment in segments:
        words: list[AlignedWord] = []
        voiced = False
        for word in segment.words:
            speaker, overlapped, heard = speaker_of(word, ordered)
            voiced = voiced or heard
            speaker = speaker or previous
            words.append(
                AlignedWord(word.start, word.end, word.text, word.probability, speaker, overlapped)
            )
            previous = speaker or previous
        flags = segment.flags
        if segment.words and not voiced:
            flags = (*flags, "no_voice")
        utterances.extend(_split(segment, words, flags))
    return utterances


def _split(segment: Segment, words: list[AlignedWord], flags: tuple[str, ...]) -> list[Utterance]:
    low = segment.low_confidence or bool(flags)
    if not words:
        return [Utterance(segment.start, segment.end, None, segment.text, (), 0.0, low, flags)]
    groups: list[list[AlignedWord]] = [[words[0]]]
    for word in words[1:]:
        if word.speaker == groups[-1][-1].speaker:
            groups[-1].append(word)
        else:
            groups.append([word])
    return [
        Utterance(
            start=group[0].start,
            end=group[-1].end,
            speaker=group[0].speaker,
            text=_join(w.text for w in group),
            words=tuple(group),
            confidence=round(sum(w.probability for w in group) / len(group), 4),
            low_confidence=low,
            flags=flags,
        )
        for group in groups
    ]


def _join(pieces: Iterable[str]) -> str:
    """Whisper's word pieces carry their punctuation; join them with single spaces."""
    return " ".join(piece for piece in pieces if piece)


def talk_time(utterances: Iterable[Utterance]) -> dict[str, float]:
    """Seconds each speaker talked (the basis of the talk-time chart and role guesses)."""
    seconds: dict[str, float] = {}
    for utterance in utterances:
        for word in utterance.words:
            if word.speaker is not None:
                seconds[word.speaker] = seconds.get(word.speaker, 0.0) + (word.end - word.start)
    return seconds
