"""What crosses HTTP about session reports, risk flags and the therapist's writing profile,
and the translation of report records (document.py) into it; edits.py goes the other way."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Literal

from pydantic import Field
from sqlmodel import SQLModel

from appliance.reports import flags as risk_flags
from appliance.reports.document import (
    RISK_LABELS,
    NoteFormat,
    Source,
    Statement,
    finding_text,
    sections,
)
from appliance.reports.models import RiskCategory
from appliance.reports.service import Version

MAX_TEXT = 2000  # one statement
MAX_SUMMARY = 8000  # the summary sent as one text
MAX_STATEMENTS = 40  # per section
MAX_HOMEWORK = 20
MAX_SOURCES = 20  # per statement
MAX_WITHHELD = 500
LONGEST_SESSION = 24 * 3600.0


def risk_label(category: str) -> str:
    """A risk category in plain words."""
    try:
        return RISK_LABELS[RiskCategory(category)]
    except ValueError:
        return category.replace("_", " ").capitalize()


# --- out -----------------------------------------------------------------------------------


class SourcePublic(SQLModel):
    """An utterance a statement came from: seconds on the session's timeline and who spoke."""

    start: float = Field(ge=0, le=LONGEST_SESSION)
    end: float = Field(ge=0, le=LONGEST_SESSION)
    speaker: str = Field(min_length=1, max_length=40)


class StatementPublic(SQLModel):
    text: str
    sources: list[SourcePublic]
    by_therapist: bool


class HomeworkPublic(SQLModel):
    what: str
    how_often: str | None
    due: str | None
    sources: list[SourcePublic]
    by_therapist: bool


class RiskFlagPublic(SQLModel):
    """A risk the draft raised; open until the therapist acknowledges or dismisses it."""

    id: uuid.UUID
    session_id: uuid.UUID
    category: str
    category_label: str
    status: Literal["open", "acknowledged", "dismissed"]
    utterances: list[SourcePublic]
    note: str
    reason: str | None  # the therapist's, once decided
    decided_at: datetime | None
    created_at: datetime


class RiskAssessmentPublic(SQLModel):
    category: str
    status: Literal["flagged", "discussed", "not_assessed"]
    text: str
    sources: list[SourcePublic]


class SectionPublic(SQLModel):
    title: str
    statements: list[StatementPublic]


class VersionPublic(SQLModel):
    version: int
    status: Literal["draft", "approved", "superseded"]
    source: Literal["ai", "therapist"]
    created_at: datetime
    approved_at: datetime | None


class ReportPublic(SQLModel):
    """The version the therapist works on (the newest draft, else the approved one)."""

    session_id: uuid.UUID
    version: int
    status: Literal["draft", "approved"]
    source: Literal["ai", "therapist"]
    note_format: NoteFormat
    summary: str
    summary_statements: list[StatementPublic]
    key_points: list[StatementPublic]
    interventions: list[StatementPublic]
    plan: list[StatementPublic]
    homework: list[HomeworkPublic]
    risk_flags: list[RiskFlagPublic]
    risk_assessment: list[RiskAssessmentPublic]
    sections: list[SectionPublic]
    model_id: str | None  # AI provenance: the weights and the prompt that drafted it
    prompt_hash: str | None
    based_on: int | None
    created_at: datetime
    approved_at: datetime | None
    approved_version: int | None  # the approval in force when a newer draft sits beside it
    versions: list[VersionPublic]


class RiskFlagInboxItem(SQLModel):
    """One open flag in the therapist's inbox: who, what, which session."""

    id: uuid.UUID
    session_id: uuid.UUID
    session_date: date
    patient_id: uuid.UUID
    patient_name: str
    category: str
    category_label: str
    utterances: list[SourcePublic]
    created_at: datetime


def _sources(sources: Sequence[Source]) -> list[SourcePublic]:
    return [SourcePublic(start=s.start, end=s.end, speaker=s.speaker) for s in sources]


def _statements(statements: Sequence[Statement]) -> list[StatementPublic]:
    return [
        StatementPublic(text=s.text, sources=_sources(s.sources), by_therapist=s.by_therapist)
        for s in statements
    ]


def flag_public(flag: risk_flags.Flag) -> RiskFlagPublic:
    return RiskFlagPublic(
        id=flag.id,
        session_id=flag.session_id,
        category=flag.category.value,
        category_label=risk_label(flag.category.value),
        status=flag.status.value,
        utterances=_sources(flag.evidence),
        note=flag.note,
        reason=flag.reason,
        decided_at=flag.decided_at,
        created_at=flag.created_at,
    )


def version_public(version: Version) -> VersionPublic:
    return VersionPublic(
        version=version.version,
        status=version.status.value,
        source=version.source.value,
        created_at=version.created_at,
        approved_at=version.approved_at,
    )


def decided(flags: Sequence[risk_flags.Flag]) -> dict[RiskCategory, str]:
    """Per category, the decision on its flags: open while any is open."""
    found: dict[RiskCategory, str] = {}
    for flag in flags:
        if found.get(flag.category) != "open":
            found[flag.category] = flag.status.value
    return found


def report_public(
    chosen: Version,
    found: Sequence[Version],
    flags: Sequence[risk_flags.Flag],
    approved: Version | None,
) -> ReportPublic:
    report = chosen.report
    decisions = decided(flags)
    return ReportPublic(
        session_id=chosen.session_id,
        version=chosen.version,
        status="approved" if chosen.status.value == "approved" else "draft",
        source=chosen.source.value,
        note_format=chosen.note_format,
        summary=report.summary_text(),
        summary_statements=_statements(report.summary),
        key_points=_statements(report.key_points),
        interventions=_statements(report.interventions),
        plan=_statements(report.plan),
        homework=[
            HomeworkPublic(
                what=h.what,
                how_often=h.how_often,
                due=h.due,
                sources=_sources(h.sources),
                by_therapist=h.by_therapist,
            )
            for h in report.homework
        ],
        risk_flags=[flag_public(f) for f in flags],
        risk_assessment=[
            RiskAssessmentPublic(
                category=f.category.value,
                status=f.status.value,
                text=finding_text(f, decisions.get(f.category)),
                sources=_sources(f.sources),
            )
            for f in report.risk_assessment()
        ],
        sections=[
            SectionPublic(title=s.title, statements=_statements(s.statements))
            for s in sections(report, chosen.note_format, decisions)
        ],
        model_id=chosen.model_id,
        prompt_hash=chosen.prompt_hash,
        based_on=chosen.based_on,
        created_at=chosen.created_at,
        approved_at=chosen.approved_at,
        approved_version=(
            approved.version if approved is not None and approved.id != chosen.id else None
        ),
        versions=[version_public(v) for v in found],
    )


# --- in ------------------------------------------------------------------------------------


class StatementIn(SQLModel):
    """A statement as the client sends it back; `sources` as read (or none for a new one)."""

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    sources: list[SourcePublic] | None = Field(default=None, max_length=MAX_SOURCES)


class HomeworkIn(SQLModel):
    what: str = Field(min_length=1, max_length=500)
    how_often: str | None = Field(default=None, max_length=200)
    due: str | None = Field(default=None, max_length=100)
    sources: list[SourcePublic] | None = Field(default=None, max_length=MAX_SOURCES)


Statements = list[StatementIn | str]


class ReportEdit(SQLModel):
    """The therapist's edit of version `based_on`: the whole report as it should read.
    Risk findings are not edited here: flags are decided one by one, with a reason."""

    based_on: int = Field(ge=1)
    summary: str | Statements = Field(default_factory=list)
    key_points: Statements = Field(default_factory=list, max_length=MAX_STATEMENTS)
    interventions: Statements = Field(default_factory=list, max_length=MAX_STATEMENTS)
    homework: list[HomeworkIn] = Field(default_factory=list, max_length=MAX_HOMEWORK)
    plan: Statements = Field(default_factory=list, max_length=MAX_STATEMENTS)
    note_format: NoteFormat | None = None


class Span(SQLModel):
    start: float = Field(ge=0, le=LONGEST_SESSION)
    end: float = Field(ge=0, le=LONGEST_SESSION)


class ApproveRequest(SQLModel):
    version: int = Field(ge=1)
    release: bool = False  # let the patient ask about this session
    withhold: list[Span] = Field(default_factory=list, max_length=MAX_WITHHELD)  # clinical-only


class FlagDecision(SQLModel):
    decision: Literal["acknowledged", "dismissed"]
    reason: str = Field(min_length=1, max_length=risk_flags.MAX_REASON)


class RegenerateAccepted(SQLModel):
    session_id: uuid.UUID
    requeued: list[uuid.UUID]  # the report jobs queued again
    state: str  # the report job's state now


class ProfilePublic(SQLModel):
    approach: str
    tone: str
    preferred_terms: str
    example_notes: str
    updated_at: datetime | None


class ProfileUpdate(SQLModel):
    """How the therapist writes notes. Example notes must be de-identified."""

    approach: str = Field(default="", max_length=200)
    tone: str = Field(default="", max_length=200)
    preferred_terms: str = Field(default="", max_length=1000)
    example_notes: str = Field(default="", max_length=20000)


# --- an edit, with provenance --------------------------------------------------------------
