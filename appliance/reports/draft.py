"""The AI report drafter: a diarized transcript in, a `Report` draft out, every statement linked
to the utterances it came from. The pipeline's report stage calls `draft_report`.

Map-reduce, so a 60-minute session fits a 4k context: the transcript is cut into windows of
numbered utterances (prompt.py), the model writes `TYPE: text [numbers]` notes for each window,
and a short reduce call turns the windows' summaries into one, linked to the union of their
sources. The model is small, so its notes are checked, not trusted:

- a note must cite a number of its own window, and the cited utterance (or its neighbour: the
  model miscounts by one) must share enough of the note's words; otherwise it is dropped and
  counted (`Drafted.dropped`), as is a copy of the prompt's worked example;
- a note with assumed-normal phrasing ("denies SI", "no risk", "no concerns") or a negated risk
  topic is dropped and counted (`Drafted.assumed_normal`): risk is said only by the risk
  section, and silence there reads "not assessed";
- homework and risk come first from the appliance's own detectors over the whole transcript
  (homework.py, risk.py); the model's HOMEWORK and RISK notes only add what those checks
  confirm in the utterance they cite.

Greedy decoding (temperature 0): the same transcript, profile and model give the same draft.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.chat.grounding import split_sentences
from appliance.chat.llm import ChatMessage, ChatModel, GenerationOptions
from appliance.errors import Invalid
from appliance.reports import homework, risk
from appliance.reports.document import Line, Report, Statement
from appliance.reports.models import RiskCategory
from appliance.reports.prompt import (
    EXAMPLE_NOTES,
    Profile,
    Window,
    map_messages,
    prompt_hash,
    reduce_messages,
    split_windows,
    window_budget,
)

__all__ = ["Drafted", "Profile", "draft_report"]

KINDS = ("SUMMARY", "POINT", "INTERVENTION", "HOMEWORK", "PLAN", "RISK")
MAX_NOTES = 40  # per window: past this the model is looping, not noting
SUPPORT = 0.4  # share of a note's content words its cited utterances must hold
EXAMPLE_COPY = 0.5  # share of words in common with a worked-example note that marks a copy
REDUCED_SENTENCES = 3

_NOTE = re.compile(
    r"^\s*(?:[-*\u2022]\s*)?\[?(?P<kind>[A-Za-z]+)\]?\s*[:\-]\s*(?P<body>.*)$",
)
_CITED = re.compile(r"\s*[\[(](?:lines?\s*)?(?P<numbers>[\d\s,;\-\u2013and]+)[\])]\s*[.]?\s*$")
_RANGE = re.compile(r"(\d+)\s*[\-\u2013]\s*(\d+)|(\d+)")
# Words that frame a note rather than carry its claim: they need no support.
_FRAMING = homework.words(
    """patient therapist session client they he she talked talk discussed discuss said say
    reported report described mentioned explained shared felt feel feels also about today
    week their his her"""
)


@dataclass(frozen=True)
class Drafted:
    report: Report
    model_id: str
    prompt_hash: str  # sha256 of the templates and the profile (never the transcript)
    windows: int  # map windows (model calls before the reduce)
    dropped: int  # model notes that linked to no supporting utterance of their window
    assumed_normal: int = 0  # model notes dropped for assumed-normal wording


@dataclass(frozen=True)
class Note:
    """One parsed line of a map reply: its kind, text and the numbers it cites."""

    kind: str
    text: str
    numbers: tuple[int, ...]


@dataclass
class _Tally:
    dropped: int = 0
    assumed_normal: int = 0


def parse_notes(reply: str) -> list[Note]:
    """The notes of a map reply; lines of an unknown kind are skipped (not counted: the model
    pads with headings and blank lines)."""
    notes = []
    for raw in reply.splitlines():
        found = _NOTE.match(raw)
        if found is None or found["kind"].upper() not in KINDS:
            continue
        body, numbers = found["body"].strip(), []
        while cited := _CITED.search(body):
            for pair in _RANGE.finditer(cited["numbers"]):
                if pair[3]:
                    numbers.append(int(pair[3]))
                else:
                    low, high = sorted((int(pair[1]), int(pair[2])))
                    numbers.extend(range(low, min(high, low + 20) + 1))
            body = body[: cited.start()].rstrip()
        notes.append(Note(found["kind"].upper(), body.strip(" -"), tuple(dict.fromkeys(numbers))))
    return notes


def _content(text: str) -> frozenset[str]:
    return homework.words(text) - _FRAMING


def _supporting(note: Note, window: Window) -> list[int]:
    """The global numbers of the utterances that support the note: for each cited number of
    this window, whichever of it and its neighbours shares the most of the note's words."""
    claim = _content(note.text)
    linked: list[int] = []
    for number in note.numbers:
        if window.line(number) is None:
            continue
        best, best_overlap = None, 0
        for candidate in (number, number - 1, number + 1):
            line = window.line(candidate)
            if line is None:
                continue
            overlap = len(claim & homework.words(line.text))
            if overlap > best_overlap:
                best, best_overlap = candidate, overlap
        if best is not None and best not in linked:
            linked.append(best)
    said = frozenset().union(*(homework.words(window.lines[n - window.first].text) for n in linked))
    if not claim or len(claim & said) / len(claim) < SUPPORT:
        return []
    return sorted(linked)


def _copied(text: str) -> bool:
    claim = _content(text)
    for line in EXAMPLE_NOTES.splitlines():
        example = _content(line.split(":", 1)[-1])
        if claim and example and len(claim & example) / len(claim | example) >= EXAMPLE_COPY:
            return True
    return False


def _sentence(text: str) -> str:
    text = " ".join(text.split()).strip(" -")
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


@dataclass
class _Collected:
    sections: dict[str, list[tuple[str, list[int]]]]
    assignments: list[tuple[int, homework.Assignment]]
    model_flags: dict[RiskCategory, set[int]]


def _model_task(
    valid: Sequence[int], window: Window, parts: Sequence[str]
) -> tuple[int, homework.Assignment] | None:
    """A HOMEWORK note's task at the first cited utterance (or neighbour) that assigns it."""
    for number in (n for v in valid for n in (v, v - 1, v + 1)):
        line = window.line(number)
        task = None if line is None else homework.model_item(line, parts[0], parts[1], parts[2])
        if task is not None:
            return number - 1, task
    return None


def _well_formed(note: Note, linked: Sequence[Line]) -> bool:
    """A note, not a copied question, a misfiled homework line or the worked example; what the
    therapist did or plans must come from the therapist's own words."""
    if "?" in note.text or "|" in note.text or _copied(note.text):
        return False
    if note.kind in ("INTERVENTION", "PLAN"):
        return any(line.speaker != homework.PATIENT for line in linked)
    return True


def _collect(notes: Sequence[Note], window: Window, into: _Collected, tally: _Tally) -> None:
    """Check each note against its window and file it under its section (numbers are global
    and 1-based; indexes into the transcript are 0-based)."""
    for note in notes:
        if not note.text or risk.assumed_normal(note.text):
            tally.assumed_normal += bool(note.text)
            continue
        valid = [n for n in note.numbers if window.line(n) is not None]
        if note.kind == "RISK":
            category = risk.category_of(note.text)
            hits = {
                c - 1
                for n in valid
                for c in (n, n - 1, n + 1)
                if category is not None
                and (line := window.line(c)) is not None
                and risk.confirms(category, line)
            }
            if category is None or not hits:
                tally.dropped += 1
            else:
                into.model_flags.setdefault(category, set()).update(hits)
            continue
        if note.kind == "HOMEWORK":
            parts = [*(p.strip() for p in note.text.split("|")), "", ""]
            found = _model_task(valid, window, parts)
            if found is None:
                tally.dropped += 1
            else:
                into.assignments.append(found)
            continue
        linked = _supporting(note, window) if valid else []
        if not linked or not _well_formed(note, [window.lines[n - window.first] for n in linked]):
            tally.dropped += 1
            continue
        into.sections[note.kind].append((_sentence(note.text), linked))


def _generate(model: ChatModel, messages: Sequence[ChatMessage], max_tokens: int) -> str:
    """The model's reply, ended early once it loops (writes a line it already wrote) or runs
    past `MAX_NOTES` lines: closing the stream stops generation on the service."""
    stream = iter(model.stream(messages, GenerationOptions(max_tokens=max_tokens)))
    written: list[str] = []
    partial = ""
    try:
        for piece in stream:
            partial += piece
            while "\n" in partial:
                line, partial = partial.split("\n", 1)
                if line.strip() and line.strip() in {w.strip() for w in written}:
                    return "\n".join(written)
                written.append(line)
                if len(written) >= MAX_NOTES:
                    return "\n".join(written)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    return "\n".join([*written, partial])


def _merged(
    entries: Sequence[tuple[str, list[int]]], lines: Sequence[Line]
) -> tuple[Statement, ...]:
    """Statements in order of first source; one saying the same as an earlier one is folded
    into it (its sources added)."""
    kept: list[tuple[str, set[int]]] = []
    for text, numbers in sorted(entries, key=lambda e: min(e[1])):
        for other, sources in kept:
            if homework.same_task(other, text):
                sources.update(numbers)
                break
        else:
            kept.append((text, set(numbers)))
    return tuple(
        Statement(text, tuple(lines[n - 1].source for n in sorted(numbers)))
        for text, numbers in kept
    )


def _reduce(
    model: ChatModel,
    summaries: tuple[Statement, ...],
    profile: Profile | None,
    max_tokens: int,
    tally: _Tally,
) -> tuple[Statement, ...]:
    """One summary for the whole session from the windows' summaries, linked to all of their
    sources; sentences the inputs do not support are left out, and when none is left the
    windows' summaries stand."""
    notes = [s.text for s in summaries]
    reply = _generate(model, reduce_messages(notes, profile), max_tokens)
    given = homework.words(" ".join(notes))
    sources = tuple(sorted({src for s in summaries for src in s.sources}, key=lambda s: s.start))
    kept = []
    for sentence in split_sentences(reply):
        claim = _content(sentence)
        if risk.assumed_normal(sentence):
            tally.assumed_normal += 1
        elif claim and len(claim & given) / len(claim) >= 0.6:
            kept.append(Statement(_sentence(sentence), sources))
    return tuple(kept[:REDUCED_SENTENCES]) or summaries


def draft_report(
    lines: Sequence[Line],
    model: ChatModel,
    *,
    profile: Profile | None = None,
    max_tokens: int = 400,
    context_tokens: int = 4096,
    progress: Callable[[int], None] | None = None,
) -> Drafted:
    """Draft a session's report from its transcript. `progress(percent)` is called after each
    model call (the job renews its lease with it). `Invalid` for an empty transcript or a
    context too small for any window; the model's errors (`ModelBusy`, `ModelUnavailable`,
    `PromptTooLong`) propagate."""
    spoken = [line for line in lines if line.text.strip()]
    if not spoken:
        raise Invalid("the transcript is empty: there is nothing to draft a report from")
    windows = split_windows(spoken, window_budget(profile, max_tokens, context_tokens))
    calls = len(windows) + (1 if len(windows) > 1 else 0)
    tally = _Tally()
    collected = _Collected({k: [] for k in KINDS}, [], {})
    for done, window in enumerate(windows, start=1):
        reply = _generate(model, map_messages(window, profile), max_tokens)
        _collect(parse_notes(reply), window, collected, tally)
        if progress is not None:
            progress(100 * done // calls)
    sections = {kind: _merged(collected.sections[kind], spoken) for kind in KINDS}
    summary = sections["SUMMARY"]
    if len(windows) > 1 and len(summary) > 1:
        summary = _reduce(model, summary, profile, max_tokens, tally)
    if progress is not None and calls > len(windows):
        progress(100)
    found = homework.detect(spoken)
    detected = {index for index, _ in found}
    found += [(i, task) for i, task in collected.assignments if i not in detected]
    report = Report(
        summary=summary,
        key_points=sections["POINT"],
        interventions=sections["INTERVENTION"],
        homework=homework.merge(spoken, found),
        plan=sections["PLAN"],
        risk=risk.assess(spoken, collected.model_flags),
    )
    return Drafted(
        report=report,
        model_id=model.model_id,
        prompt_hash=prompt_hash(profile),
        windows=len(windows),
        dropped=tally.dropped,
        assumed_normal=tally.assumed_normal,
    )
