"""Time expressions in a patient's question, resolved before anything is ranked.

"What homework did we discuss last week?" is a question about the sessions of one calendar
week, not about passages that look like the word "week". Small embedding models and small
LLMs both get this wrong, so the appliance resolves the expression itself, against the clinic's
local date, into a date range or a pick among the patient's sessions (the first, the latest,
two sessions ago). Retrieval then searches only those sessions.

Weeks run Monday to Sunday (ISO 8601). A month or weekday named without a year means the most
recent one up to today. English only for now; the expressions are data (`_PATTERNS`) so other
languages can be added beside them.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
MONTHS |= {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
WEEKDAYS = {name.lower(): number for number, name in enumerate(calendar.day_name)}
NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "a": 1, "an": 1,
}  # fmt: skip
_COUNT = r"(\d{1,2}|" + "|".join(NUMBERS) + ")"
_MONTH = r"(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = r"(" + "|".join(WEEKDAYS) + ")"


@dataclass(frozen=True)
class DateRange:
    """Both ends included."""

    start: date
    end: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


@dataclass(frozen=True)
class SessionPick:
    """A session by position: the first, or the `n`-th most recent (1 = the latest)."""

    kind: Literal["first", "recent"]
    n: int = 1


@dataclass(frozen=True)
class TimeFilter:
    dates: DateRange | None = None
    pick: SessionPick | None = None
    phrase: str | None = None  # the words that were resolved, for the audit and for tests

    @property
    def empty(self) -> bool:
        return self.dates is None and self.pick is None


def _count(word: str) -> int:
    return int(word) if word.isdigit() else NUMBERS[word.lower()]


def _week_of(day: date) -> DateRange:
    monday = day - timedelta(days=day.weekday())
    return DateRange(monday, monday + timedelta(days=6))


def _month(year: int, month: int) -> DateRange:
    return DateRange(date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1]))


def _last_month_named(month: int, today: date, year: str | None) -> DateRange:
    if year:
        return _month(int(year), month)
    return _month(today.year if month <= today.month else today.year - 1, month)


def _day(day: date) -> DateRange:
    return DateRange(day, day)


def _named_day(month: int, day_of_month: int, today: date) -> DateRange | None:
    for year in (today.year, today.year - 1):
        try:
            candidate = date(year, month, day_of_month)
        except ValueError:
            return None
        if candidate <= today:
            return _day(candidate)
    return None


def _last_weekday(weekday: int, today: date) -> DateRange:
    """The most recent such weekday before today ("on Monday", "last Monday")."""
    back = (today.weekday() - weekday) % 7 or 7
    return _day(today - timedelta(days=back))


Resolver = Callable[["re.Match[str]", date], "DateRange | SessionPick | None"]

# Most specific first: the first pattern that matches wins.
_PATTERNS: list[tuple[str, Resolver]] = [
    (r"\b(?:our |my |the )?(?:very )?first (?:session|appointment|meeting)\b",
     lambda m, t: SessionPick("first")),
    (rf"\b{_COUNT} (?:sessions|appointments|meetings) ago\b",
     lambda m, t: SessionPick("recent", _count(m[1]))),
    (r"\b(?:the )?(?:session|appointment) before (?:the )?last\b",
     lambda m, t: SessionPick("recent", 2)),
    (r"\b(?:last|latest|previous|most recent|recent) (?:session|appointment|meeting)\b",
     lambda m, t: SessionPick("recent", 1)),
    # "today" alone is usually about now ("what should I do today?"), not a session.
    (r"\btoday's (?:session|appointment)\b|\b(?:session|appointment) today\b",
     lambda m, t: _day(t)),
    (r"\byesterday(?:'s)?\b", lambda m, t: _day(t - timedelta(days=1))),
    (rf"\b{_COUNT} days? ago\b", lambda m, t: _day(t - timedelta(days=_count(m[1])))),
    (r"\b(?:the )?week before last\b", lambda m, t: _week_of(t - timedelta(days=14))),
    (rf"\b{_COUNT} weeks? ago\b",
     lambda m, t: _week_of(t - timedelta(days=7 * _count(m[1])))),
    (r"\blast week(?:'s)?\b|\bprevious week\b", lambda m, t: _week_of(t - timedelta(days=7))),
    (r"\bthis week(?:'s)?\b", lambda m, t: _week_of(t)),
    (r"\blast month(?:'s)?\b",
     lambda m, t: _month(*((t.year, t.month - 1) if t.month > 1 else (t.year - 1, 12)))),
    (r"\bthis month(?:'s)?\b", lambda m, t: _month(t.year, t.month)),
    # Dates need "on" ("I may 5 times a day" is not the fifth of May).
    (rf"\bon (?:the )?(\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{_MONTH}\b",
     lambda m, t: _named_day(MONTHS[m[2].lower()], int(m[1]), t)),
    (rf"\bon {_MONTH} (\d{{1,2}})(?:st|nd|rd|th)?\b(?!\d)",
     lambda m, t: _named_day(MONTHS[m[1].lower()], int(m[2]), t)),
    (rf"\b(?:in|during|from|back in) {_MONTH}(?: (\d{{4}}))?\b",
     lambda m, t: _last_month_named(MONTHS[m[1].lower()], t, m[2])),
    # A bare weekday is often about the patient's life ("I missed the walk on Thursday"):
    # only "last Monday", "Monday's session" and "the session on Monday" name a session day.
    (rf"\b(?:last|this past) {_WEEKDAY}\b|\b{_WEEKDAY}'s (?:session|appointment)\b"
     rf"|\b(?:session|appointment) (?:on|last) {_WEEKDAY}\b",
     lambda m, t: _last_weekday(WEEKDAYS[next(g for g in m.groups() if g).lower()], t)),
]  # fmt: skip
_COMPILED = [(re.compile(pattern, re.IGNORECASE), resolve) for pattern, resolve in _PATTERNS]


def resolve(question: str, today: date) -> TimeFilter:
    """The first time expression in `question`, resolved against `today` (the clinic's local
    date). No expression: an empty filter (search every released session)."""
    text = " ".join(question.replace("\u2019", "'").split())  # typographic apostrophes
    for pattern, resolver in _COMPILED:
        match = pattern.search(text)
        if match is None:
            continue
        found = resolver(match, today)
        if isinstance(found, DateRange):
            return TimeFilter(dates=found, phrase=match[0])
        if isinstance(found, SessionPick):
            return TimeFilter(pick=found, phrase=match[0])
    return TimeFilter()


def select_sessions(
    time_filter: TimeFilter, sessions: Sequence[tuple[str, date]], today: date
) -> list[str]:
    """The ids among `sessions` (id, session date) that the filter means; sessions after
    today never count. An empty filter keeps them all."""
    past = sorted((s for s in sessions if s[1] <= today), key=lambda s: (s[1], s[0]))
    if time_filter.dates is not None:
        return [sid for sid, day in past if day in time_filter.dates]
    pick = time_filter.pick
    if pick is None:
        return [sid for sid, _ in past]
    if pick.kind == "first":
        return [past[0][0]] if past else []
    return [past[-pick.n][0]] if len(past) >= pick.n else []
