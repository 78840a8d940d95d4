"""`appliance eval reports`: the report drafter on scripted sessions with labelled homework and
risk, with the real model reached through `appliance llm` as in a clinic.

The set (demo/reports/set.toml, fictional) labels each session's homework items (key words
that must occur in the drafted item's "what", and optionally a word for how often and one for
by when) and the expected status of each risk category (a category left out is
`not_assessed`). Each session becomes `Line`s of `SECONDS_PER_LINE` seconds and goes through
`draft_report` exactly as the report stage calls it.

Figures: homework recall and precision (a drafted item matches at most one expected item; a
duplicate or an unlabelled task is a false positive, because the therapist must read and
reject it), how often / by when right among the matched items, risk-flag recall and
precision over (session, category) pairs, how many not-assessed categories stayed
not-assessed, every status right, assumed-normal phrases anywhere in the report's text (the
goal is none), the model notes dropped, and the median seconds per report.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.chat.llm import ChatModel
from appliance.errors import Invalid
from appliance.paths import bundled_resource
from appliance.reports.document import (
    HomeworkItem,
    Line,
    NoteFormat,
    Report,
    RiskStatus,
    sections,
)
from appliance.reports.draft import Drafted, draft_report
from appliance.reports.models import RiskCategory
from appliance.reports.risk import ASSUMED_NORMAL
from appliance.settings import INSTANCE_CONFIG_NAME, Settings, load_settings

SECONDS_PER_LINE = 6.0
ROLES = ("therapist", "patient")
GOALS = {
    "homework_recall": ">= 0.80",
    "homework_precision": ">= 0.80",
    "flag_recall": "1.0",
    "assumed_normal_phrases": "0",
}


def default_set() -> Path:
    return bundled_resource("demo/reports/set.toml", "demo/reports/set.toml")


@dataclass(frozen=True)
class ExpectedItem:
    what: tuple[str, ...]  # key words, all in the drafted item's "what" (lower case)
    often: str = ""  # a word of its "how often" ("" when none was said)
    due: str = ""  # a word of its "by when"


@dataclass(frozen=True)
class Scripted:
    key: str
    lines: tuple[Line, ...]
    homework: tuple[ExpectedItem, ...]
    risk: dict[RiskCategory, RiskStatus]

    def expected(self, category: RiskCategory) -> RiskStatus:
        return self.risk.get(category, RiskStatus.not_assessed)


@dataclass(frozen=True)
class Outcome:
    session: Scripted
    drafted: Drafted
    seconds: float


def as_lines(pairs: Sequence[Sequence[str]], offset: float = 0.0) -> tuple[Line, ...]:
    """Scripted `[role, text]` pairs as utterances of `SECONDS_PER_LINE` seconds each."""
    return tuple(
        Line(offset + n * SECONDS_PER_LINE, offset + (n + 1) * SECONDS_PER_LINE, role, text)
        for n, (role, text) in enumerate(pairs)
    )


def load_set(path: Path) -> list[Scripted]:
    """The scripted sessions of `path`; `Invalid` with one line naming what is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))["sessions"]
        sessions = [_session(s) for s in raw]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise Invalid(f"{path.name} is not a report set ({type(exc).__name__}: {exc})") from None
    except ValueError as exc:
        raise Invalid(f"{path.name} is not a report set ({exc})") from None
    if not sessions:
        raise Invalid(f"{path.name} is not a report set (no sessions)")
    if len({s.key for s in sessions}) != len(sessions):
        raise Invalid(f"{path.name} is not a report set (a session key repeats)")
    return sessions


def _session(raw: dict[str, Any]) -> Scripted:
    key = str(raw["key"])
    pairs = raw["lines"]
    if not pairs or any(len(p) != 2 or p[0] not in ROLES or not str(p[1]).strip() for p in pairs):
        raise ValueError(f"session {key!r}: lines must be [therapist|patient, text]")
    items = []
    for item in raw["homework"]:
        what = tuple(str(w).lower() for w in item["what"])
        if not what or not all(what):
            raise ValueError(f"session {key!r}: a homework item needs key words")
        items.append(ExpectedItem(what, str(item.get("often", "")), str(item.get("due", ""))))
    risk = {RiskCategory(c): RiskStatus(s) for c, s in raw["risk"].items()}
    return Scripted(key, as_lines(pairs), tuple(items), risk)


@contextmanager
def served_model(settings: Settings, model: ChatModel | None = None) -> Iterator[ChatModel]:
    """The given model, or the real one: `appliance llm` in its own process (with this
    [llm] table, in a scratch data directory), reached over loopback as the report stage
    reaches it."""
    if model is not None:
        yield model
        return
    from appliance.chat.llm import LlamaServiceClient
    from appliance.demo_chat import llm_service

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="appliance-eval-")))
        scratch = load_settings(
            data_dir=folder / "var",
            models_dir=settings.resolved_models_dir,
            llm=settings.llm.model_dump(),
        )
        scratch.data_dir.mkdir(parents=True)
        # `appliance llm` reads its settings from its data dir: give it this [llm] table.
        table = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.llm.model_dump().items())
        (scratch.data_dir / INSTANCE_CONFIG_NAME).write_text(f"[llm]\n{table}")
        base = stack.enter_context(llm_service(scratch))
        timeout = settings.llm.request_timeout_seconds  # as `LlamaServiceClient.from_settings`
        yield stack.enter_context(LlamaServiceClient(base, timeout_seconds=timeout))


def evaluate(
    settings: Settings, path: Path | None = None, *, model: ChatModel | None = None
) -> dict[str, Any]:
    """Draft every session of the set and score the drafts."""
    source = path or default_set()
    sessions = load_set(source)
    outcomes = []
    with served_model(settings, model) as chat_model:
        for scripted in sessions:
            started = time.monotonic()
            drafted = draft_report(
                scripted.lines,
                chat_model,
                max_tokens=settings.reports.max_tokens,
                context_tokens=settings.llm.n_ctx,
            )
            outcomes.append(Outcome(scripted, drafted, time.monotonic() - started))
        model_id = chat_model.model_id
    result = score(outcomes)
    result.update({"set": source.name, "sessions": len(sessions), "model": model_id})
    return result


def _matches(expected: ExpectedItem, item: HomeworkItem) -> bool:
    what = item.what.lower()
    return all(word in what for word in expected.what)


def pair_homework(
    expected: Sequence[ExpectedItem], drafted: Sequence[HomeworkItem]
) -> list[tuple[ExpectedItem, HomeworkItem]]:
    """Each expected item with the first drafted item that matches it and no earlier one."""
    free = list(drafted)
    pairs = []
    for wanted in expected:
        for item in free:
            if _matches(wanted, item):
                pairs.append((wanted, item))
                free.remove(item)
                break
    return pairs


def report_text(report: Report) -> str:
    """Everything a therapist would read in the draft, in any note format, each line once."""
    said = (st.text for f in NoteFormat for s in sections(report, f) for st in s.statements)
    return "\n".join(dict.fromkeys(said))


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def score(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The figures of `appliance eval reports` (apart from drafting, so that the arithmetic
    can be tested on made-up drafts)."""
    expected_items = drafted_items = matched = 0
    fields_checked = fields_right = 0
    flag_expected = flag_drafted = flag_both = 0
    unassessed = unassessed_kept = statuses = statuses_right = 0
    phrases = 0
    failures: list[dict[str, Any]] = []
    for outcome in outcomes:
        scripted, report = outcome.session, outcome.drafted.report
        pairs = pair_homework(scripted.homework, report.homework)
        expected_items += len(scripted.homework)
        drafted_items += len(report.homework)
        matched += len(pairs)
        for wanted, item in pairs:
            for word, said in ((wanted.often, item.how_often), (wanted.due, item.due)):
                if word:
                    fields_checked += 1
                    fields_right += word.lower() in (said or "").lower()
        hits = {id(item) for _, item in pairs}
        missed = [" ".join(w.what) for w in scripted.homework if w not in {p[0] for p in pairs}]
        extra = [item.what for item in report.homework if id(item) not in hits]
        wrong_risk = []
        for found in report.risk_assessment():
            want = scripted.expected(found.category)
            flag_expected += want == RiskStatus.flagged
            flag_drafted += found.status == RiskStatus.flagged
            flag_both += want == found.status == RiskStatus.flagged
            unassessed += want == RiskStatus.not_assessed
            unassessed_kept += want == found.status == RiskStatus.not_assessed
            statuses += 1
            statuses_right += want == found.status
            if want != found.status:
                wrong_risk.append(f"{found.category.value}: {found.status.value} not {want.value}")
        found_phrases = ASSUMED_NORMAL.findall(report_text(report))
        phrases += len(found_phrases)
        if missed or extra or wrong_risk or found_phrases:
            failures.append(
                {
                    "session": scripted.key,
                    "homework_missed": missed,
                    "homework_extra": extra,
                    "risk": wrong_risk,
                    "assumed_normal": found_phrases,
                }
            )
    seconds = [o.seconds for o in outcomes]
    result: dict[str, Any] = {
        "reports": len(outcomes),
        "homework_expected": expected_items,
        "homework_drafted": drafted_items,
        "homework_recall": _rate(matched, expected_items),
        "homework_precision": _rate(matched, drafted_items),
        "homework_fields_right": _rate(fields_right, fields_checked),
        "flags_expected": flag_expected,
        "flags_drafted": flag_drafted,
        "flag_recall": _rate(flag_both, flag_expected),
        "flag_precision": _rate(flag_both, flag_drafted),
        "not_assessed_kept": _rate(unassessed_kept, unassessed),
        "risk_status_right": _rate(statuses_right, statuses),
        "assumed_normal_phrases": phrases,
        "dropped_notes": sum(o.drafted.dropped for o in outcomes),
        "assumed_normal_notes_dropped": sum(o.drafted.assumed_normal for o in outcomes),
        "windows": sum(o.drafted.windows for o in outcomes),
        "seconds_per_report": round(statistics.median(seconds), 2) if seconds else None,
        "goals": GOALS,
        "failures": failures,
    }
    result["goals_met"] = _goals_met(result)
    return result


def _goals_met(result: dict[str, Any]) -> bool:
    def at_least(value: float | None, goal: float) -> bool:
        return value is None or value >= goal

    return (
        at_least(result["homework_recall"], 0.8)
        and at_least(result["homework_precision"], 0.8)
        and at_least(result["flag_recall"], 1.0)
        and result["assumed_normal_phrases"] == 0
    )


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render(result: dict[str, Any]) -> str:
    goals = result["goals"]
    lines = [
        f"{result['reports']} reports from {result['set']}, model {result['model']}, "
        f"median {_figure(result['seconds_per_report'])} s per report "
        f"({result['windows']} windows)",
        f"homework recall       {_figure(result['homework_recall'])}   precision "
        f"{_figure(result['homework_precision'])}   (goal {goals['homework_recall']} each; "
        f"{result['homework_drafted']} drafted, {result['homework_expected']} expected)",
        f"homework fields right {_figure(result['homework_fields_right'])}   "
        "(how often / by when, among matched items)",
        f"risk flag recall      {_figure(result['flag_recall'])}   precision "
        f"{_figure(result['flag_precision'])}   (goal {goals['flag_recall']} recall)",
        f"not assessed kept     {_figure(result['not_assessed_kept'])}   "
        f"every risk status right {_figure(result['risk_status_right'])}",
        f"assumed-normal phrases {result['assumed_normal_phrases']}     "
        f"(goal {goals['assumed_normal_phrases']})",
        f"model notes dropped   {result['dropped_notes']} unlinked or unsupported, "
        f"{result['assumed_normal_notes_dropped']} for assumed-normal wording",
        "all goals met" if result["goals_met"] else "goals NOT met",
    ]
    for failure in result["failures"]:
        details = [
            *(f"missed {m!r}" for m in failure["homework_missed"]),
            *(f"extra {e!r}" for e in failure["homework_extra"]),
            *failure["risk"],
            *(f"assumed-normal {p!r}" for p in failure["assumed_normal"]),
        ]
        lines.append(f"  {failure['session']}: " + "; ".join(details))
    return "\n".join(lines)
