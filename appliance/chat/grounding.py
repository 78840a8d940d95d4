"""Grounding: keep only the sentences of a model's answer that the retrieved passages support.

The models this appliance runs are small. Left alone they ramble, pad with pleasantries, invent
numbers and names, and cite nothing or the wrong session. So the model's own citations are never
trusted: the appliance splits the answer into sentences, matches each one against the sentences
of the passages the model was shown, and attaches a citation (session, start-end, speaker, the
quoted line) only where that match holds. Sentences without support are dropped; when none is
left the caller shows `NOT_FOUND`, or `extractive_answer` quotes the passages themselves.

The match is lexical on purpose: deterministic, explainable to a clinician and cheap. Paraphrase
is allowed only as far as a tiny suffix stemmer and number words reach. Erring strict costs a
true sentence now and then (the extractive fallback still quotes it); erring loose would put an
invented claim in front of a patient under a real session's citation.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from appliance.pipeline.exports import NAMES
from appliance.retrieval.lexical import STOPWORDS, tokens

if TYPE_CHECKING:
    from appliance.retrieval.search import Hit

NOT_FOUND = "I can't find that in your sessions \u2014 please ask your therapist."


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Answer framing ("Sure! Based on your sessions, your therapist suggested ..."): no claim, so
# these words neither need support nor count towards it. A sentence of only these and
# stopwords is filler ("I hope this helps.") and is dropped silently.
_FRAMING = _words(
    """sure certainly absolutely course okay ok yes yeah hi hello great good question questions
    hope helps helpful found find here's according based seems appears recall remember summary
    summarise summarize overall also additionally however note noted let know happy glad free
    ask asked anything else information info thanks thank please suggested suggest suggests
    recommended recommend advised encouraged agreed explained told shared described pointed
    answer sources source citation citations"""
)
_NEGATIONS = _words("not no never nothing none nobody neither nor cannot without")
_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_NUMBER_WORDS = {word: str(i) for i, word in enumerate(_NUMBERS.split())} | {
    "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "hundred": "100", "twice": "2",
}  # fmt: skip
_ABBREVIATIONS = _words("dr mr mrs ms mx prof st jr sr vs etc eg ie e.g i.e approx fig a.m p.m")

_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'"})
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_CAPITALISED = re.compile(r"(?<![\w'])[A-Z][\w']*")
_OPENERS = ':"\u201c(-\u2014'  # a capital after these starts a quote or clause, like a sentence
_SPEAKER = re.compile(
    rf"^\s*((?:{'|'.join(sorted({*NAMES.values(), 'Unknown'}))})(?: \([^)\n]*\))?):\s*"
)
_BOUNDARY = re.compile("[.!?\u2026]+[\"'\u201d)\\]]*\\s+")
_BULLET = re.compile(r"^\s*(?:[-*\u2022+>]+|\(?\d{1,2}[.)]|#{1,6})\s+")
_MARKUP = re.compile(r"\*\*|__|`|\s*\[[^\]\n]*\]")  # emphasis, code, "[1]"-style citations
_LABEL = re.compile(r"^[A-Z][\w'-]*(?: [\w'-]+){0,2}:\s+(?=\S)")  # "Homework: walk daily."


@dataclass(frozen=True)
class Citation:
    passage_id: uuid.UUID
    session_id: uuid.UUID
    session_date: date
    start: float
    end: float
    speaker: str | None  # "Therapist", "Patient", ...; None for a structured fact
    excerpt: str  # the supporting passage sentence, with its speaker prefix


@dataclass(frozen=True)
class GroundedSentence:
    text: str
    citation: Citation


@dataclass(frozen=True)
class Grounded:
    sentences: tuple[GroundedSentence, ...]
    dropped: tuple[str, ...]  # claims without support (filler is not listed)

    @property
    def answer(self) -> str:
        return " ".join(sentence.text for sentence in self.sentences)

    @property
    def supported(self) -> bool:
        return bool(self.sentences)


def stem(word: str) -> str:
    """A deliberately tiny stemmer ("walked", "walking", "walks" -> "walk"; "three" -> "3").
    Both sides go through it, so it only has to be consistent, not linguistically right."""
    word = word.lower().translate(_APOSTROPHES).removesuffix("'s")
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    if word.isdigit() or len(word) <= 3:
        return word
    if word.endswith(("ies", "ied")) and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        base = word.removesuffix(suffix)
        if base != word and len(base) >= 3 and not word.endswith("eed"):
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]  # "stopped" -> "stop", "running" -> "run"
            word = base
            break
    if word.endswith("ly") and len(word) >= 6:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]  # "hope" ~ "hoping", "breathe" ~ "breathing"
    return word


def split_sentences(text: str, *, model_output: bool = True) -> list[str]:
    """Sentences of free text: cut at sentence punctuation and line breaks, but not after
    "Dr." or an initial, nor inside "2.5". From model output, bullets, numbering, markdown and
    a leading label ("Homework:", "Therapist:") are removed; a passage is quoted as it is."""
    pieces: list[str] = []
    if model_output:
        text = _MARKUP.sub("", text.translate(_APOSTROPHES))
    for raw in text.splitlines():
        line = _LABEL.sub("", _BULLET.sub("", raw).strip()) if model_output else raw.strip()
        line += " "
        start = 0
        for boundary in _BOUNDARY.finditer(line):
            before = line[start : boundary.start()].rsplit(None, 1)
            last = before[-1].rstrip(".") if before else ""
            if (
                boundary.group().startswith(".")
                and (
                    last.lower() in _ABBREVIATIONS
                    or (len(last) == 1 and last.isupper())  # "J. Smith"
                    or line[boundary.end() : boundary.end() + 1].islower()
                )
            ):
                continue
            pieces.append(line[start : boundary.end()])
            start = boundary.end()
        pieces.append(line[start:])
    return [p.strip(" -\u2013\u2014") for p in pieces if any(c.isalnum() for c in p)]


def _stems(text: str) -> frozenset[str]:
    return frozenset(stem(word) for word in tokens(text.translate(_APOSTROPHES)))


def _content(text: str) -> list[str]:
    """The claim-carrying words of an answer sentence, stemmed, in order, once each."""
    words = (w for w in tokens(text.translate(_APOSTROPHES)) if w not in _FRAMING)
    return list(dict.fromkeys(stem(word) for word in words))


def _negated(text: str) -> bool:
    words = _WORD.findall(text.lower().translate(_APOSTROPHES))
    return any(w in _NEGATIONS or w.endswith("n't") for w in words)


def _numbers(text: str) -> set[str]:
    """Numbers the sentence states ("3", "three"); "one" is too often a pronoun to count."""
    words = tokens(text.translate(_APOSTROPHES))
    return {stem(w) for w in words if w.isdigit() or (w in _NUMBER_WORDS and w != "one")}


def _capitalised(text: str) -> Iterator[tuple[str, bool]]:
    """(stem, whether it opens a sentence or quote) of each capitalised non-stopword."""
    for found in _CAPITALISED.finditer(text):
        word = found.group().lower().translate(_APOSTROPHES)
        if word in STOPWORDS or word in _FRAMING or word == "i" or word.startswith("i'"):
            continue
        before = text[: found.start()].rstrip()
        yield stem(word), not before or before[-1] in _OPENERS


@dataclass(frozen=True)
class _Line:
    """One sentence of one passage's speaker turn: the unit a citation quotes."""

    hit: Hit
    order: int
    speaker: str | None
    sentence: str
    stems: frozenset[str]

    @property
    def excerpt(self) -> str:
        return f"{self.speaker}: {self.sentence}" if self.speaker else self.sentence

    def citation(self) -> Citation:
        hit = self.hit
        return Citation(
            hit.id, hit.session_id, hit.session_date, hit.start, hit.end, self.speaker, self.excerpt
        )


def _lines(passages: Sequence[Hit]) -> list[_Line]:
    found: list[_Line] = []
    for hit in passages:
        for turn in hit.text.splitlines():
            prefix = _SPEAKER.match(turn)
            speaker = prefix.group(1) if prefix else None
            body = turn[prefix.end() :] if prefix else turn
            for sentence in split_sentences(body, model_output=False):
                found.append(_Line(hit, len(found), speaker, sentence, _stems(sentence)))
    return found


class _Weights:
    """Rarity of each stem across the passage sentences: a shared rare word ("Tomasz",
    "river") says more about support than a shared common one ("feel"); a word no passage
    has weighs most, so an invented detail costs a sentence the most."""

    def __init__(self, lines: Sequence[_Line]) -> None:
        counts: dict[str, int] = {}
        for line in lines:
            for word in line.stems:
                counts[word] = counts.get(word, 0) + 1
        n = len(lines) + 1
        self.weight = {word: 1.0 + math.log(n / (count + 1)) for word, count in counts.items()}
        self.unseen = 1.0 + math.log(n)

    def share(self, words: Sequence[str], matched: set[str]) -> float:
        total = sum(self.weight.get(word, self.unseen) for word in words)
        return sum(self.weight.get(word, self.unseen) for word in matched) / total if total else 0.0


def ground(answer: str, passages: Sequence[Hit], *, threshold: float = 0.6) -> Grounded:
    """Each sentence of `answer` kept with the passage sentence that best supports it, or
    dropped. Support: at least `threshold` of the sentence's (rarity-weighted) content words
    found in one passage sentence, at least two of them (all, if it has fewer); every number
    and name it states present there too; and both negated or neither."""
    lines = _lines(passages)
    weights = _Weights(lines)
    named = {s for line in lines for s, opens in _capitalised(line.sentence) if not opens}
    seen = {word for line in lines for word in line.stems}
    kept: list[GroundedSentence] = []
    dropped: list[str] = []
    for sentence in dict.fromkeys(split_sentences(answer)):  # small models repeat themselves
        words = _content(sentence)
        if not words:
            continue  # filler: "Sure!", "I hope this helps."
        numbers = _numbers(sentence)
        # A capitalised first word is a name only if the passages use it as one or never use
        # it at all: "Walking helped" names nobody; "Maria walked with you" invents Maria.
        names = {
            s for s, opens in _capitalised(sentence) if not opens or s in named or s not in seen
        }
        negated = _negated(sentence)
        best: tuple[float, int, float, int] | None = None
        support: _Line | None = None
        for line in lines:
            matched = set(words) & line.stems
            score = weights.share(words, matched)
            if (
                score >= threshold
                and len(matched) >= min(2, len(words))
                and numbers <= line.stems
                and names <= line.stems
                and negated == _negated(line.sentence)
            ):
                rank = (score, len(matched), line.hit.score, -line.order)
                if best is None or rank > best:
                    best, support = rank, line
        if support is None:
            dropped.append(sentence)
        else:
            kept.append(GroundedSentence(sentence, support.citation()))
    return Grounded(tuple(kept), tuple(dropped))


# Words that place a question in time ("last week"): timeframe.py already chose the sessions
# from them, so they say nothing about which sentence answers.
_TIME = _words(
    """last week weeks month months year ago yesterday today first recent recently previous
    earlier time monday tuesday wednesday thursday friday saturday sunday"""
)


TIME_WORDS = _TIME  # words that place a question in time; they say nothing about its subject

# Verbs that frame a question ("what homework did I *get*", "what did you *ask* me to write")
# rather than name its subject: matched in a passage ("getting impatient") they pick the wrong line.
_ASKING = _words(
    """get gets got getting give gave given do does did done make made go goes went going
    have has had take took say says said saying tell told talk talked discuss discussed
    mention mentioned ask asked want wanted"""
)


def extractive_answer(
    question: str,
    passages: Sequence[Hit],
    max_sentences: int = 3,
    *,
    min_score: float = 0.3,
    follow: int = 0,
    limit: int | None = None,
    accept: Callable[[str], bool] | None = None,
) -> Grounded:
    """An answer made only of quotes: the passage sentences sharing most (rarity-weighted)
    question words, in session order, each citing itself. The fallback when the model's answer
    fails grounding: the patient still gets what was said, word for word, rather than nothing.
    `follow` adds the sentences right after each chosen one in its passage: the line that
    names the subject ("so here's your homework") is often followed by the one that answers
    ("write a coping card"). `limit` caps the quotes, best first (a follow-up line counts with
    the line it follows), before they are put in session order; `accept` skips sentences the
    caller will not show. Overlapping passages repeat lines: each is quoted once."""
    lines = _lines(passages)
    weights = _Weights(lines)
    asked = [w for w in tokens(question) if w not in _TIME and w not in _ASKING]
    wanted = list(dict.fromkeys(stem(w) for w in asked))
    scored = []
    for line in lines:
        score = weights.share(wanted, set(wanted) & line.stems)
        if score > 0 and score >= min_score:
            scored.append((score, line.hit.score, -line.order, line))
    best = [item[3] for item in sorted(scored, key=lambda item: item[:3], reverse=True)]
    by_place = {(id(line.hit), line.order): line for line in lines}
    picked: list[_Line] = []
    said: set[str] = set()
    for line in best[:max_sentences]:
        after = (by_place.get((id(line.hit), line.order + step)) for step in range(1, follow + 1))
        for candidate in (line, *after):
            if candidate is None or candidate.sentence in said:
                continue
            if accept is not None and not accept(candidate.excerpt):
                continue
            said.add(candidate.sentence)
            picked.append(candidate)
    picked = picked[:limit]
    chosen = sorted(picked, key=lambda x: (x.hit.session_date, x.hit.start, x.order))
    return Grounded(tuple(GroundedSentence(line.excerpt, line.citation()) for line in chosen), ())


def quoted_fact(hit: Hit) -> GroundedSentence:
    """An approved fact (a homework item) as an answer sentence, word for word, citing itself."""
    citation = Citation(
        hit.id, hit.session_id, hit.session_date, hit.start, hit.end, None, hit.text
    )
    return GroundedSentence(hit.text, citation)
