"""Time expressions resolve against a fixed clinic date (Saturday 21 November 2026)."""

from __future__ import annotations

from datetime import date

import pytest

from appliance.retrieval.timeframe import DateRange, SessionPick, resolve, select_sessions

TODAY = date(2026, 11, 21)  # a Saturday


@pytest.mark.parametrize(
    ("question", "start", "end"),
    [
        ("What homework did we discuss last week?", date(2026, 11, 9), date(2026, 11, 15)),
        ("what did we say this week", date(2026, 11, 16), date(2026, 11, 22)),
        ("and the week before last?", date(2026, 11, 2), date(2026, 11, 8)),
        ("Two weeks ago we talked about sleep", date(2026, 11, 2), date(2026, 11, 8)),
        ("What did we cover in yesterday's session?", date(2026, 11, 20), date(2026, 11, 20)),
        ("What did we agree in today's session?", date(2026, 11, 21), date(2026, 11, 21)),
        ("three days ago", date(2026, 11, 18), date(2026, 11, 18)),
        ("What did we talk about in October?", date(2026, 10, 1), date(2026, 10, 31)),
        ("back in December", date(2025, 12, 1), date(2025, 12, 31)),  # not a future month
        ("in March 2025", date(2025, 3, 1), date(2025, 3, 31)),
        ("What did we discuss last month?", date(2026, 10, 1), date(2026, 10, 31)),
        ("on the 3rd of November", date(2026, 11, 3), date(2026, 11, 3)),
        ("on Nov 3rd", date(2026, 11, 3), date(2026, 11, 3)),
        ("in the session on Tuesday", date(2026, 11, 17), date(2026, 11, 17)),
        ("last Saturday", date(2026, 11, 14), date(2026, 11, 14)),
        ("What did you say in Monday\u2019s session?", date(2026, 11, 16), date(2026, 11, 16)),
    ],
)
def test_expressions_resolve_to_a_date_range(question: str, start: date, end: date) -> None:
    assert resolve(question, TODAY).dates == DateRange(start, end)


@pytest.mark.parametrize(
    ("question", "pick"),
    [
        ("What was the homework from the first session?", SessionPick("first")),
        ("in our very first appointment", SessionPick("first")),
        ("What did we discuss in the last session?", SessionPick("recent", 1)),
        ("my most recent session", SessionPick("recent", 1)),
        ("What did we talk about two sessions ago?", SessionPick("recent", 2)),
        ("3 sessions ago", SessionPick("recent", 3)),
        ("the session before last", SessionPick("recent", 2)),
    ],
)
def test_expressions_pick_a_session_by_position(question: str, pick: SessionPick) -> None:
    assert resolve(question, TODAY).pick == pick


@pytest.mark.parametrize(
    "question",
    [
        "What homework do I have?",
        "Why did I miss the walk on Thursday?",  # the patient's life, not a session day
        "What should I practise today?",
        "How many minutes of breathing?",
        "I may 5 times a day",  # not a date
    ],
)
def test_questions_without_a_session_time_search_everything(question: str) -> None:
    assert resolve(question, TODAY).empty


SESSIONS = [
    ("s1", date(2026, 10, 6)),
    ("s2", date(2026, 10, 20)),
    ("s3", date(2026, 11, 10)),
    ("s4", date(2026, 11, 17)),
    ("future", date(2026, 11, 24)),  # booked, not held: never an answer
]


def test_filters_select_the_patients_sessions() -> None:
    def chosen(question: str) -> list[str]:
        return select_sessions(resolve(question, TODAY), SESSIONS, TODAY)

    assert chosen("last week") == ["s3"]
    assert chosen("this week") == ["s4"]
    assert chosen("in October") == ["s1", "s2"]
    assert chosen("the first session") == ["s1"]
    assert chosen("the last session") == ["s4"]
    assert chosen("two sessions ago") == ["s3"]
    assert chosen("five sessions ago") == []
    assert chosen("what homework?") == ["s1", "s2", "s3", "s4"]
    assert chosen("yesterday's session") == []
