"""Check the report evaluation set (demo/reports/set.toml) before it is committed.

Standalone, standard library only. Run from the repository root:

    .venv/bin/python demo/reports/check_set.py demo/reports/set.toml

Checks the shape (sessions with key, lines, homework, risk), the lines ([role, text], role
therapist or patient, turns alternating, text ending in . ? or !), the size of each session
(lines and words), that every homework label can be met (its key words occur together in one
therapist line, its `often` and `due` words in that line too), that risk labels name known
categories and statuses, and that the set covers what the evaluation needs: a flagged
suicidal-ideation session, a flagged abuse session, a screened-and-discussed session, and
sessions with no risk talk at all. Prints a summary and exits 1 on any problem.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

ROLES = ("therapist", "patient")
LINES_PER_SESSION = (20, 40)
WORDS_PER_SESSION = (300, 1200)
SESSIONS = (6, 10)
CATEGORIES = ("suicidal_ideation", "self_harm", "harm_to_others", "abuse_neglect")
STATUSES = ("flagged", "discussed", "not_assessed")
KEYS = {"key", "lines", "homework", "risk"}


def check_session(session: dict[str, Any], errors: list[str]) -> None:
    key = session.get("key", "?")
    if set(session) != KEYS:
        errors.append(f"{key}: keys must be {sorted(KEYS)}, not {sorted(session)}")
        return
    lines = session["lines"]
    if not LINES_PER_SESSION[0] <= len(lines) <= LINES_PER_SESSION[1]:
        errors.append(f"{key}: {len(lines)} lines, not {LINES_PER_SESSION}")
    words = sum(len(str(line[-1]).split()) for line in lines)
    if not WORDS_PER_SESSION[0] <= words <= WORDS_PER_SESSION[1]:
        errors.append(f"{key}: {words} words, not {WORDS_PER_SESSION}")
    for n, line in enumerate(lines, start=1):
        if len(line) != 2 or line[0] not in ROLES or str(line[1]).rstrip()[-1:] not in ".?!":
            errors.append(f"{key} line {n}: must be [therapist|patient, text ending . ? !]")
        if n > 1 and line[0] == lines[n - 2][0]:
            errors.append(f"{key} line {n}: the same speaker twice in a row")
    therapist = [str(text).lower() for role, text in lines if role == "therapist"]
    for item in session["homework"]:
        words_needed = [w.lower() for w in item.get("what", [])]
        extra = [str(item.get(k, "")).lower() for k in ("often", "due") if item.get(k)]
        if not words_needed or not any(
            all(w in text for w in [*words_needed, *extra]) for text in therapist
        ):
            errors.append(f"{key}: no therapist line holds homework {item}")
    for category, status in session["risk"].items():
        if category not in CATEGORIES or status not in STATUSES:
            errors.append(f"{key}: risk {category} = {status} is not a known category/status")


def main(path: Path) -> int:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    sessions = data.get("sessions", [])
    errors: list[str] = []
    if not SESSIONS[0] <= len(sessions) <= SESSIONS[1]:
        errors.append(f"{len(sessions)} sessions, not {SESSIONS}")
    keys = [s.get("key") for s in sessions]
    if len(set(keys)) != len(keys):
        errors.append("session keys repeat")
    for session in sessions:
        check_session(session, errors)
    risks = [s.get("risk", {}) for s in sessions]
    needed = {
        "a flagged suicidal-ideation session": any(
            r.get("suicidal_ideation") == "flagged" for r in risks
        ),
        "a flagged abuse session": any(r.get("abuse_neglect") == "flagged" for r in risks),
        "a screened, discussed session": any("discussed" in r.values() for r in risks),
        "two sessions with no risk talk": sum(not r for r in risks) >= 2,
        "homework in most sessions": sum(bool(s.get("homework")) for s in sessions)
        >= len(sessions) - 2,
    }
    errors += [f"the set needs {what}" for what, present in needed.items() if not present]
    items = sum(len(s.get("homework", [])) for s in sessions)
    print(f"{len(sessions)} sessions, {items} homework items, {sum(map(bool, risks))} with risk")
    for error in errors:
        print(f"ERROR {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo/reports/set.toml")))
