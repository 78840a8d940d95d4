"""Which words of an answer stand: the checks between the model (or the passages) and the
patient, kept apart from `chat.service` so that the text rules can be read, and tested, without
a database, a session or a model.

- `verified`: the model's sentences, as each is complete, that the retrieved passages support
  (`grounding.ground`) and that say something the question did not (`adds_to`).
- `unknown_names`: a name the question hinges on that no passage mentions (it was not
  discussed, whatever search returned).
- `without`: the question less its time expression, so "two" or "October" are not taken for
  its subject.
- `citations`: one public citation per quoted excerpt.
"""

from __future__ import annotations

import calendar
import difflib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from appliance.chat import grounding
from appliance.chat.llm import ChatMessage, ChatModel, GenerationOptions
from appliance.chat.schemas import CitationPublic
from appliance.retrieval.lexical import tokens
from appliance.retrieval.search import Hit


def verified(
    model: ChatModel, messages: Sequence[ChatMessage], hits: Sequence[Hit], question: str
) -> Iterator[grounding.GroundedSentence]:
    """The model's sentences that the passages support, each as soon as it is complete."""
    buffer = ""
    seen: set[str] = set()
    options = GenerationOptions(max_tokens=256, temperature=0.0)
    stream = model.stream(messages, options)
    try:
        for piece in stream:
            buffer += piece
            sentences = grounding.split_sentences(buffer)
            if len(sentences) < 2:
                continue
            done, buffer = sentences[:-1], sentences[-1]
            for sentence in done:
                yield from _supported(sentence, hits, seen, question)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if buffer.strip():
        yield from _supported(buffer, hits, seen, question)


def _supported(
    sentence: str, hits: Sequence[Hit], seen: set[str], question: str
) -> Iterator[grounding.GroundedSentence]:
    for kept in grounding.ground(sentence, hits).sentences:
        if kept.text not in seen and adds_to(question, kept.text):
            seen.add(kept.text)
            yield kept


_NAME = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]+(?:'s)?")


def unknown_names(question: str, hits: Sequence[Hit]) -> list[str]:
    """Names the question asks about ("my dog Biscuit", "my trip to Japan") that no retrieved
    passage mentions, even misspelled (transcripts spell names as they were heard). Search
    always returns the nearest passages; when the question hinges on a name none of them
    contains, it was not discussed, and any answer would be about something else."""
    words = {w.lower() for hit in hits for w in re.findall(r"[A-Za-z]+", hit.text)}
    missing = []
    for found in _NAME.findall(question):
        name = found.removesuffix("'s").lower()
        if name in grounding.TIME_WORDS or name in _MONTHS or name in words:
            continue
        if not difflib.get_close_matches(name, words, n=1, cutoff=0.8):
            missing.append(found)
    return missing


_MONTHS = frozenset(m.lower() for m in calendar.month_name if m)


def adds_to(question: str, sentence: str) -> bool:
    """Whether a sentence says something the question did not: "You agreed on some
    homework." is true to the passages and cited, and still no answer to "What homework did
    we agree on?". Words are compared by their first four letters (agree ~ agreed)."""
    asked = {word[:4] for word in tokens(question)}
    said = [w for w in tokens(sentence) if w not in grounding.TIME_WORDS and w not in _FILLER]
    return len(said) >= 2 and any(word[:4] not in asked for word in said)


_FILLER = frozenset(
    {"yes", "yeah", "okay", "ok", "sure", "right", "well", "good", "fine", "thanks", "mm", "hmm"}
)


def citations(kept: Sequence[grounding.GroundedSentence]) -> list[CitationPublic]:
    unique: dict[tuple[Any, str], CitationPublic] = {}
    for sentence in kept:
        c = sentence.citation
        unique.setdefault(
            (c.passage_id, c.excerpt),
            CitationPublic(
                session_id=c.session_id,
                session_date=c.session_date,
                start=round(c.start, 2),
                end=round(c.end, 2),
                speaker=c.speaker,
                excerpt=c.excerpt,
            ),
        )
    return list(unique.values())


def without(phrase: str | None, question: str) -> str:
    """The question without its time expression ("Two sessions ago, what did you ask me to
    write?" -> "what did you ask me to write?"): the sessions were chosen from it already, and
    its words ("two", "October") would otherwise count as the subject of the answer."""
    if not phrase:
        return question
    rest = " ".join(question.replace(phrase, " ", 1).split()).strip(" ,;")
    return rest or question
