"""A therapist's edit (`ReportEdit`) applied to the report it started from.

An edit keeps provenance honest: a statement the therapist left as it was keeps its sources
and its author (model or therapist); a new or reworded one is the therapist's
(`by_therapist`), keeping the sources the client sent back with it, or, for a line edited in
place in the console's textarea, the sources of the line it replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.errors import Invalid
from appliance.reports.document import HomeworkItem, Report, Source, Statement
from appliance.reports.homework import same_task
from appliance.reports.schemas import (
    MAX_STATEMENTS,
    MAX_SUMMARY,
    MAX_TEXT,
    HomeworkIn,
    ReportEdit,
    StatementIn,
)


@dataclass(frozen=True)
class _Incoming:
    text: str
    sources: tuple[Source, ...] | None  # None: the client did not say


def _norm(text: str) -> str:
    return " ".join(text.split())


def _incoming(items: Sequence[StatementIn | str]) -> list[_Incoming]:
    found = []
    for item in items:
        if isinstance(item, str):
            text, sources = item, None
        else:
            text = item.text
            sources = (
                None
                if item.sources is None
                else tuple(Source(s.start, s.end, s.speaker) for s in item.sources)
            )
        if len(text) > MAX_TEXT:
            raise Invalid(f"a statement is longer than {MAX_TEXT} characters")
        if _norm(text):
            found.append(_Incoming(_norm(text), sources))
    return found


def _carried(base: Sequence[Statement], items: Sequence[_Incoming]) -> tuple[Statement, ...]:
    """Each incoming statement, with the sources and author it should have (module doc)."""
    unmatched = list(range(len(base)))
    kept: dict[int, int] = {}  # incoming index -> base index, for unchanged texts
    for index, item in enumerate(items):
        match = next((b for b in unmatched if _norm(base[b].text) == item.text), None)
        if match is not None:
            kept[index] = match
            unmatched.remove(match)
    result = []
    for index, item in enumerate(items):
        if index in kept:
            old = base[kept[index]]
            if item.sources is None or item.sources == old.sources:
                result.append(old)
                continue
            result.append(Statement(item.text, item.sources, True))
            continue
        if item.sources is not None:
            sources = item.sources
        elif index in unmatched:  # edited in place: the line it replaced
            sources = base[index].sources
        else:
            sources = ()
        result.append(Statement(item.text, sources, True))
    return tuple(result)


def _homework(
    base: Sequence[HomeworkItem], items: Sequence[HomeworkIn]
) -> tuple[HomeworkItem, ...]:
    """Like statements; a changed frequency or due date makes an item the therapist's too.
    A different task typed over a row does not inherit that row's utterance: the portal would
    play that moment as where the new task was said. A reworded one of the same task does."""
    as_statements = [Statement(h.what, h.sources, h.by_therapist) for h in base]
    wanted = [h for h in items if _norm(h.what)]
    incoming = [
        _Incoming(
            _norm(h.what),
            None
            if h.sources is None
            else tuple(Source(s.start, s.end, s.speaker) for s in h.sources),
        )
        for h in wanted
    ]
    result = []
    carried = _carried(as_statements, incoming)
    for index, (statement, item) in enumerate(zip(carried, wanted, strict=True)):
        how_often = _norm(item.how_often or "") or None
        due = _norm(item.due or "") or None
        old = next((base[j] for j, s in enumerate(as_statements) if s is statement), None)
        if old is not None and (old.how_often, old.due) == (how_often, due):
            result.append(old)
            continue
        sources = statement.sources
        replaced = base[index] if old is None and index < len(base) else None
        if (
            replaced is not None
            and item.sources is None
            and sources == replaced.sources
            and not same_task(replaced.what, statement.text)
        ):
            sources = ()
        result.append(HomeworkItem(statement.text, how_often, due, sources, True))
    return tuple(result)


def edited(base: Report, edit: ReportEdit) -> Report:
    """The report `edit` describes, built on `base` (see the module doc on provenance)."""
    if isinstance(edit.summary, str):
        if len(edit.summary) > MAX_SUMMARY:
            raise Invalid(f"the summary is longer than {MAX_SUMMARY} characters")
        if _norm(edit.summary) == _norm(base.summary_text()):
            summary = base.summary
        else:
            lines = [line for line in edit.summary.splitlines() if line.strip()]
            summary = _carried(base.summary, _incoming(lines))
    else:
        summary = _carried(base.summary, _incoming(edit.summary))
    if len(summary) > MAX_STATEMENTS:
        raise Invalid(f"the summary has more than {MAX_STATEMENTS} statements")
    return Report(
        summary=summary,
        key_points=_carried(base.key_points, _incoming(edit.key_points)),
        interventions=_carried(base.interventions, _incoming(edit.interventions)),
        homework=_homework(base.homework, edit.homework),
        plan=_carried(base.plan, _incoming(edit.plan)),
        risk=base.risk,
    )
