"""Check the retrieval evaluation set (demo/retrieval/set.toml) before it is committed.

Standalone, standard library only. Run from the repository root:

    .venv/bin/python demo/retrieval/check_set.py demo/retrieval/set.toml

Checks the shape (today, patients, sessions, questions and their keys), the session dates
(valid, weekdays, not after `today`), the lines ([role, text], role therapist or patient, turns
alternating, text ending in . ? or !), the size of each session (lines and words), that each
question's session belongs to its patient and that its passage (at least four words) occurs
verbatim in exactly one line of that session, and that the canary phrase occurs exactly once
in the whole set, in a session of the second patient, and in no question. Prints a summary and
exits 1 on any problem; a passage that also occurs in another session of the same patient is
only a warning.
"""

from __future__ import annotations

import statistics
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

CANARY = "the indigo ferry to Caldermoor"
ROLES = ("therapist", "patient")
SESSIONS_PER_PATIENT = (6, 7)
LINES_PER_SESSION = (24, 40)
WORDS_PER_SESSION = (500, 1100)
QUESTIONS = (24, 30)
MIN_PASSAGE_WORDS = 4
KEYS = {
    "top": {"today", "patients", "sessions", "questions"},
    "patient": {"key", "name"},
    "session": {"key", "patient", "date", "lines"},
    "question": {"patient", "question", "session", "passage"},
}


class Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _keys(table: Any, kind: str, where: str, problems: Problems) -> bool:
    if not isinstance(table, dict):
        problems.error(f"{where}: not a table")
        return False
    missing = KEYS[kind] - table.keys()
    extra = table.keys() - KEYS[kind]
    if missing:
        problems.error(f"{where}: missing {sorted(missing)}")
    if extra:
        problems.error(f"{where}: unexpected {sorted(extra)}")
    return not missing


def _date(value: Any, where: str, problems: Problems) -> date | None:
    if not isinstance(value, str):
        problems.error(f"{where}: date must be a string like 2026-11-21, got {value!r}")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        problems.error(f"{where}: not a valid date: {value!r}")
        return None


def _in(value: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= value <= bounds[1]


def check_lines(key: str, lines: Any, problems: Problems) -> list[str]:
    """The texts of a session's lines, checking each one."""
    if not isinstance(lines, list) or not lines:
        problems.error(f"session {key}: lines must be a non-empty array")
        return []
    texts: list[str] = []
    previous_role = None
    for number, line in enumerate(lines, 1):
        where = f"session {key} line {number}"
        if not (
            isinstance(line, list) and len(line) == 2 and all(isinstance(x, str) for x in line)
        ):
            problems.error(f"{where}: must be [role, text], got {line!r}")
            continue
        role, text = line
        if role not in ROLES:
            problems.error(f"{where}: role {role!r} is not one of {ROLES}")
        if role == previous_role:
            problems.error(f"{where}: two {role} lines in a row (turns must alternate)")
        previous_role = role
        if text != " ".join(text.split()) or not text:
            problems.error(f"{where}: empty, or stray whitespace in the text")
        if not text.endswith((".", "?", "!")):
            problems.error(f"{where}: does not end with . ? or !: ...{text[-30:]!r}")
        if '"' in text:
            problems.error(f"{where}: double quotes (transcripts have none)")
        texts.append(text)
    return texts


@dataclass
class Session:
    patient: str
    day: date | None
    texts: list[str]

    @property
    def words(self) -> int:
        return sum(len(text.split()) for text in self.texts)


def check_patients(data: dict[str, Any], problems: Problems) -> dict[str, str]:
    patients: dict[str, str] = {}
    for number, patient in enumerate(data["patients"], 1):
        if not _keys(patient, "patient", f"patient {number}", problems):
            continue
        if patient["key"] in patients:
            problems.error(f"patient {number}: duplicate key {patient['key']!r}")
        if not isinstance(patient["name"], str) or not patient["name"].strip():
            problems.error(f"patient {number}: empty name")
        patients[patient["key"]] = patient["name"]
    if len(patients) != 2:
        problems.error(f"expected 2 patients, found {len(patients)}")
    return patients


def check_sessions(
    data: dict[str, Any], patients: dict[str, str], today: date | None, problems: Problems
) -> dict[str, Session]:
    sessions: dict[str, Session] = {}
    for number, session in enumerate(data["sessions"], 1):
        where = f"session {number}"
        if not _keys(session, "session", where, problems):
            continue
        key = session["key"]
        where = f"session {number} ({key})"
        if key in sessions:
            problems.error(f"{where}: duplicate key")
        if session["patient"] not in patients:
            problems.error(f"{where}: unknown patient {session['patient']!r}")
        day = _date(session["date"], where, problems)
        if day is not None and day.weekday() >= 5:
            problems.error(f"{where}: {day} is a {day:%A}, not a weekday")
        if day is not None and today is not None and day > today:
            problems.error(f"{where}: {day} is after today ({today})")
        found = Session(session["patient"], day, check_lines(key, session["lines"], problems))
        if not _in(len(found.texts), LINES_PER_SESSION):
            problems.error(f"{where}: {len(found.texts)} lines, expected {LINES_PER_SESSION}")
        if not _in(found.words, WORDS_PER_SESSION):
            problems.error(f"{where}: {found.words} words, expected {WORDS_PER_SESSION}")
        sessions[key] = found

    for patient in patients:
        own = [s for s in sessions.values() if s.patient == patient]
        if not _in(len(own), SESSIONS_PER_PATIENT):
            problems.error(
                f"patient {patient}: {len(own)} sessions, expected {SESSIONS_PER_PATIENT}"
            )
        for day, count in Counter(s.day for s in own if s.day is not None).items():
            if count > 1:
                problems.error(f"patient {patient}: {count} sessions on {day}")
    return sessions


def check_questions(
    data: dict[str, Any],
    patients: dict[str, str],
    sessions: dict[str, Session],
    problems: Problems,
) -> Counter[str]:
    """Checks the questions; returns how many target each session."""
    questions = data["questions"]
    if not _in(len(questions), QUESTIONS):
        problems.error(f"{len(questions)} questions, expected {QUESTIONS}")
    asked: Counter[str] = Counter()
    seen: set[str] = set()
    for number, question in enumerate(questions, 1):
        if not _keys(question, "question", f"question {number}", problems):
            continue
        text, passage, key = question["question"], question["passage"], question["session"]
        where = f"question {number} ({text!r})"
        if text in seen:
            problems.error(f"{where}: asked twice")
        seen.add(text)
        if not text.endswith("?"):
            problems.error(f"{where}: does not end with a question mark")
        if question["patient"] not in patients:
            problems.error(f"{where}: unknown patient {question['patient']!r}")
        if CANARY.lower() in f"{text} {passage}".lower():
            problems.error(f"{where}: targets the canary")
        if key not in sessions:
            problems.error(f"{where}: unknown session {key!r}")
            continue
        asked[key] += 1
        if sessions[key].patient != question["patient"]:
            problems.error(f"{where}: session {key} belongs to {sessions[key].patient}")
        if len(passage.split()) < MIN_PASSAGE_WORDS:
            problems.error(f"{where}: passage {passage!r} is under {MIN_PASSAGE_WORDS} words")
        lines = sum(passage in line for line in sessions[key].texts)
        if lines != 1:
            problems.error(f"{where}: passage {passage!r} is in {lines} lines of {key}, not 1")
        elsewhere = [
            other
            for other, session in sessions.items()
            if other != key
            and session.patient == question["patient"]
            and any(passage in line for line in session.texts)
        ]
        if elsewhere:
            problems.warn(f"{where}: passage {passage!r} also in {', '.join(elsewhere)}")
    return asked


def check_canary(
    patients: dict[str, str], sessions: dict[str, Session], problems: Problems
) -> None:
    where = [
        key for key, s in sessions.items() for line in s.texts for _ in range(line.count(CANARY))
    ]
    if len(where) != 1:
        problems.error(f"canary {CANARY!r} occurs {len(where)} times, expected once")
    elif len(patients) > 1 and sessions[where[0]].patient != list(patients)[1]:
        problems.error(f"canary is in {where[0]}, not in a session of the second patient")


def summary(
    today: date | None,
    patients: dict[str, str],
    sessions: dict[str, Session],
    asked: Counter[str],
) -> None:
    print(f"today {today}")
    for patient, name in patients.items():
        own = sorted(
            ((k, s) for k, s in sessions.items() if s.patient == patient),
            key=lambda pair: (str(pair[1].day), pair[0]),
        )
        questions = sum(asked[k] for k, _ in own)
        print(f"\n{patient} ({name}): {len(own)} sessions, {questions} questions")
        for key, session in own:
            print(
                f"  {key:<10} {session.day}  {len(session.texts):>2} lines"
                f"  {session.words:>4} words  {asked[key]} questions"
            )
        words = [session.words for _, session in own]
        if words:
            print(
                f"  words per session: min {min(words)}, "
                f"median {statistics.median(words):g}, max {max(words)}"
            )


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("set.toml")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        print(f"{path}: {error}", file=sys.stderr)
        return 1
    problems = Problems()
    try:
        arrays = ("patients", "sessions", "questions")
        if _keys(data, "top", "top level", problems) and all(
            isinstance(data[name], list) or problems.error(f"{name}: not an array")
            for name in arrays
        ):
            today = _date(data["today"], "today", problems)
            patients = check_patients(data, problems)
            sessions = check_sessions(data, patients, today, problems)
            asked = check_questions(data, patients, sessions, problems)
            check_canary(patients, sessions, problems)
            summary(today, patients, sessions, asked)
    except (KeyError, TypeError, AttributeError) as error:  # a shape too broken to go on
        problems.error(f"malformed set: {error!r}")
    for warning in problems.warnings:
        print(f"warning: {warning}")
    for error in problems.errors:
        print(f"error: {error}", file=sys.stderr)
    if problems.errors:
        print(f"\n{path}: {len(problems.errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"\n{path}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
