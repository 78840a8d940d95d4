"""Transcript chunks: the passages a patient's question is matched against and cited from.

A chunk is built from whole sentences (never a half sentence, so a citation never quotes
something cut off mid-thought) of consecutive speaker turns, about `min_words` to `max_words`
long, and starts with the last sentence or two of the chunk before it, so an answer that spans
a chunk boundary is still found whole. Each sentence keeps its own start and end time from the
word timestamps, so a chunk can be cited to the minute. Low-confidence spans are left out
entirely: they are never indexed, so they can never be quoted to a patient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from appliance.pipeline.exports import NAMES
from appliance.pipeline.schemas import SegmentPublic

_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")


@dataclass(frozen=True)
class Sentence:
    start: float
    end: float
    speaker: str | None
    role: str | None
    text: str
    words: int


@dataclass(frozen=True)
class Chunk:
    index: int
    start: float
    end: float
    text: str  # "Therapist: ...\nPatient: ..."
    speakers: tuple[str, ...]
    roles: tuple[str, ...]
    words: int


def sentences(segments: Iterable[SegmentPublic]) -> Iterator[Sentence]:
    """Sentences of the confident segments, cut at sentence-final punctuation and at speaker
    changes, timed by their words."""
    for segment in segments:
        if segment.low_confidence or not segment.words:
            continue
        pending: list[tuple[float, float, str]] = []
        for word in segment.words:
            pending.append((word.start, word.end, word.text))
            if _SENTENCE_END.search(word.text):
                yield _sentence(segment, pending)
                pending = []
        if pending:  # a segment ends a sentence too (Whisper segments end at pauses)
            yield _sentence(segment, pending)


def _sentence(segment: SegmentPublic, words: list[tuple[float, float, str]]) -> Sentence:
    return Sentence(
        start=words[0][0],
        end=words[-1][1],
        speaker=segment.speaker,
        role=segment.role,
        text=" ".join(text for _, _, text in words),
        words=len(words),
    )


def chunk(
    segments: Sequence[SegmentPublic],
    *,
    min_words: int = 100,
    max_words: int = 300,
    overlap_words: int = 30,
) -> list[Chunk]:
    """Pack sentences into chunks: close a chunk at a speaker change once it has `min_words`,
    and before it would pass `max_words` (a single longer sentence stands alone)."""
    found: list[Chunk] = []
    current: list[Sentence] = []
    carried = 0  # sentences at the start of `current` repeated from the previous chunk

    def close() -> None:
        nonlocal current, carried
        if len(current) > carried:
            found.append(_chunk(len(found), current))
            current = _overlap(current, overlap_words)
            carried = len(current)

    for sentence in sentences(segments):
        size = sum(s.words for s in current)
        too_big = size + sentence.words > max_words
        turn_done = size >= min_words and bool(current) and sentence.speaker != current[-1].speaker
        if too_big or turn_done:
            close()
        if sum(s.words for s in current) + sentence.words > max_words:
            current, carried = [], 0  # no room for the overlap before this sentence
        current.append(sentence)
    close()
    return found


def _overlap(closed: list[Sentence], overlap_words: int) -> list[Sentence]:
    """The last sentences of a closed chunk, up to `overlap_words`, to open the next one."""
    kept: list[Sentence] = []
    for sentence in reversed(closed):
        if sum(s.words for s in kept) + sentence.words > overlap_words:
            break
        kept.insert(0, sentence)
    return kept


def _chunk(index: int, members: list[Sentence]) -> Chunk:
    lines: list[str] = []
    previous: str | None = "\0"
    for sentence in members:
        if sentence.speaker != previous:
            lines.append(f"{NAMES.get(sentence.role or '', 'Unknown')}: {sentence.text}")
            previous = sentence.speaker
        else:
            lines[-1] += " " + sentence.text
    return Chunk(
        index=index,
        start=members[0].start,
        end=members[-1].end,
        text="\n".join(lines),
        speakers=tuple(dict.fromkeys(s.speaker for s in members if s.speaker)),
        roles=tuple(dict.fromkeys(s.role for s in members if s.role)),
        words=sum(s.words for s in members),
    )
