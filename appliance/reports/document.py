"""A report's content as immutable records, and its sealed JSON form.

Every statement carries the utterances it came from (`Source`: start, end, speaker role), so a
therapist can check each line against the recording. A drafted statement without a source is
dropped before it is stored; a therapist's own line may have none (`by_therapist`).

Risk is assessed per category with three outcomes. `not_assessed` is what a session that never
touched the topic gets: the appliance never writes an assumed-normal phrase ("denies SI").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from appliance.reports.models import RiskCategory


class NoteFormat(StrEnum):
    soap = "soap"
    dap = "dap"
    birp = "birp"
    summary = "summary"


class RiskStatus(StrEnum):
    flagged = "flagged"  # something said raises the risk: a flag the therapist must decide
    discussed = "discussed"  # the topic came up and nothing raised it; the sources show how
    not_assessed = "not_assessed"  # the topic never came up


RISK_LABELS = {
    RiskCategory.suicidal_ideation: "Suicidal ideation",
    RiskCategory.self_harm: "Self-harm",
    RiskCategory.harm_to_others: "Harm to others",
    RiskCategory.abuse_neglect: "Abuse or neglect",
}


@dataclass(frozen=True)
class Source:
    start: float
    end: float
    speaker: str  # "therapist", "patient" or the diarization label when the role is unknown


@dataclass(frozen=True)
class Line:
    """One utterance of the transcript as the drafter sees it (low-confidence ones left out)."""

    start: float
    end: float
    speaker: str  # role when known, else the diarization label
    text: str

    @property
    def source(self) -> Source:
        return Source(self.start, self.end, self.speaker)


@dataclass(frozen=True)
class Statement:
    text: str
    sources: tuple[Source, ...] = ()
    by_therapist: bool = False  # written or rewritten by the therapist, not the model


@dataclass(frozen=True)
class HomeworkItem:
    what: str
    how_often: str | None = None
    due: str | None = None
    sources: tuple[Source, ...] = ()
    by_therapist: bool = False


@dataclass(frozen=True)
class RiskFinding:
    category: RiskCategory
    status: RiskStatus
    note: str = ""
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Report:
    summary: tuple[Statement, ...] = ()
    key_points: tuple[Statement, ...] = ()
    interventions: tuple[Statement, ...] = ()
    homework: tuple[HomeworkItem, ...] = ()
    plan: tuple[Statement, ...] = ()
    risk: tuple[RiskFinding, ...] = field(default_factory=tuple)

    def finding(self, category: RiskCategory) -> RiskFinding:
        """The finding for a category; `not_assessed` when the draft has none."""
        for found in self.risk:
            if found.category == category:
                return found
        return RiskFinding(category, RiskStatus.not_assessed)

    def risk_assessment(self) -> tuple[RiskFinding, ...]:
        """One finding per category, in a fixed order."""
        return tuple(self.finding(category) for category in RiskCategory)

    def summary_text(self) -> str:
        return " ".join(s.text for s in self.summary)


def finding_text(found: RiskFinding, decision: str | None = None) -> str:
    """The line a note shows for a risk category; `decision` is the therapist's decision on
    its flag (acknowledged, dismissed), if any."""
    label = RISK_LABELS[found.category]
    if found.status == RiskStatus.not_assessed:
        return f"{label}: not assessed."
    if found.status == RiskStatus.flagged:
        state = (
            f"{decision} by the therapist"
            if decision in ("acknowledged", "dismissed")
            else "flagged for review"
        )
        return f"{label}: {state}. {found.note}".strip()
    return f"{label}: discussed. {found.note}".strip()


@dataclass(frozen=True)
class Section:
    title: str
    statements: tuple[Statement, ...]


def sections(
    report: Report,
    note_format: NoteFormat,
    decisions: Mapping[RiskCategory, str] | None = None,
) -> tuple[Section, ...]:
    """The report laid out in the clinic's note format. Statements are only arranged here,
    never rewritten, so each keeps its sources. `decisions`: the therapist's decision on each
    category's flag."""
    decided = decisions or {}
    risk = tuple(
        Statement(finding_text(f, decided.get(f.category)), f.sources)
        for f in report.risk_assessment()
    )
    homework = tuple(
        Statement(homework_text(item), item.sources, item.by_therapist) for item in report.homework
    )
    # What the patient said (any source is the patient) vs what the therapist observed or did.
    patient_said = tuple(s for s in report.key_points if _from(s, "patient"))
    observed = tuple(s for s in report.key_points if not _from(s, "patient"))
    plan = homework + report.plan
    if note_format == NoteFormat.soap:
        layout = [
            ("Subjective", patient_said),
            ("Objective", observed + report.interventions),
            ("Assessment", report.summary + risk),
            ("Plan", plan),
        ]
    elif note_format == NoteFormat.dap:
        layout = [
            ("Data", report.key_points + report.interventions),
            ("Assessment", report.summary + risk),
            ("Plan", plan),
        ]
    elif note_format == NoteFormat.birp:
        layout = [
            ("Behavior", patient_said),
            ("Intervention", report.interventions),
            ("Response", observed),
            ("Plan", plan + risk),
        ]
    else:
        layout = [
            ("Summary", report.summary),
            ("Key points", report.key_points),
            ("Interventions", report.interventions),
            ("Homework", homework),
            ("Treatment plan", report.plan),
            ("Risk", risk),
        ]
    return tuple(Section(title, statements) for title, statements in layout)


def homework_text(item: HomeworkItem) -> str:
    extra = [part for part in (item.how_often, f"due {item.due}" if item.due else None) if part]
    return f"{item.what} ({', '.join(extra)})" if extra else item.what


def _from(statement: Statement, role: str) -> bool:
    return any(s.speaker == role for s in statement.sources)


# --- JSON (the sealed body) ---------------------------------------------------------------


def _sources_doc(sources: tuple[Source, ...]) -> list[dict[str, Any]]:
    return [{"start": s.start, "end": s.end, "speaker": s.speaker} for s in sources]


def _sources(doc: list[dict[str, Any]]) -> tuple[Source, ...]:
    return tuple(Source(float(d["start"]), float(d["end"]), str(d["speaker"])) for d in doc)


def _statement_doc(s: Statement) -> dict[str, Any]:
    return {"text": s.text, "sources": _sources_doc(s.sources), "by_therapist": s.by_therapist}


def _statement(doc: dict[str, Any]) -> Statement:
    return Statement(str(doc["text"]), _sources(doc["sources"]), bool(doc.get("by_therapist")))


def to_doc(report: Report) -> dict[str, Any]:
    return {
        "summary": [_statement_doc(s) for s in report.summary],
        "key_points": [_statement_doc(s) for s in report.key_points],
        "interventions": [_statement_doc(s) for s in report.interventions],
        "homework": [
            {
                "what": h.what,
                "how_often": h.how_often,
                "due": h.due,
                "sources": _sources_doc(h.sources),
                "by_therapist": h.by_therapist,
            }
            for h in report.homework
        ],
        "plan": [_statement_doc(s) for s in report.plan],
        "risk": [
            {
                "category": f.category.value,
                "status": f.status.value,
                "note": f.note,
                "sources": _sources_doc(f.sources),
            }
            for f in report.risk
        ],
    }


def from_doc(doc: dict[str, Any]) -> Report:
    return Report(
        summary=tuple(_statement(d) for d in doc.get("summary", [])),
        key_points=tuple(_statement(d) for d in doc.get("key_points", [])),
        interventions=tuple(_statement(d) for d in doc.get("interventions", [])),
        homework=tuple(
            HomeworkItem(
                str(d["what"]),
                d.get("how_often"),
                d.get("due"),
                _sources(d["sources"]),
                bool(d.get("by_therapist")),
            )
            for d in doc.get("homework", [])
        ),
        plan=tuple(_statement(d) for d in doc.get("plan", [])),
        risk=tuple(
            RiskFinding(
                RiskCategory(d["category"]),
                RiskStatus(d["status"]),
                d["note"],
                _sources(d["sources"]),
            )
            for d in doc.get("risk", [])
        ),
    )
