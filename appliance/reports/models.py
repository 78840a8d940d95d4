"""Report tables: versions of a session's report, the risk flags a draft raised, the spans a
therapist withheld as clinical-only, and each therapist's writing profile.

A report's content is one sealed JSON document (see document.py) per version: drafts and
approved versions are never edited in place, so what was approved stays as approved.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class ReportStatus(StrEnum):
    draft = "draft"  # the latest proposal (AI or edited); not shown to the patient
    approved = "approved"  # the therapist's approved version (at most one per session)
    superseded = "superseded"  # an older draft or an approval replaced by a later one


class ReportSource(StrEnum):
    ai = "ai"  # drafted by the local model
    therapist = "therapist"  # an edit of an earlier version


class SessionReport(SQLModel, table=True):
    __tablename__ = "session_reports"
    __table_args__ = (
        UniqueConstraint("session_id", "version", name="session_reports_one_per_version"),
        CheckConstraint(
            "status IN ('draft', 'approved', 'superseded')", name="session_report_status_known"
        ),
        CheckConstraint("source IN ('ai', 'therapist')", name="session_report_source_known"),
        CheckConstraint(
            "status <> 'approved' OR (approved_by IS NOT NULL AND approved_at IS NOT NULL)",
            name="session_report_approval_recorded",
        ),
        Index(
            "session_reports_one_approved",
            "session_id",
            unique=True,
            postgresql_where="status = 'approved'",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="therapy_sessions.id", index=True, ondelete="CASCADE")
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    version: int
    status: str = Field(default=ReportStatus.draft.value, sa_type=String(16))
    source: str = Field(default=ReportSource.ai.value, sa_type=String(16))
    note_format: str = Field(sa_type=String(16))
    body_enc: bytes = Field(sa_type=LargeBinary)  # document.Report as JSON
    # AI provenance: which weights and which prompt drafted it (kept through edits).
    model_id: str | None = Field(default=None, sa_type=String(200))
    prompt_hash: str | None = Field(default=None, sa_type=String(64))
    based_on: int | None = None  # the version an edit started from
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    approved_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    approved_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class RiskCategory(StrEnum):
    suicidal_ideation = "suicidal_ideation"
    self_harm = "self_harm"
    harm_to_others = "harm_to_others"
    abuse_neglect = "abuse_neglect"


class FlagStatus(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    dismissed = "dismissed"


class RiskFlag(SQLModel, table=True):
    """A risk a draft raised, linked to the utterances that raised it. It stays open until
    the therapist acknowledges or dismisses it with a reason; a report with open flags
    cannot be approved."""

    __tablename__ = "risk_flags"
    __table_args__ = (
        CheckConstraint(
            "category IN ('suicidal_ideation', 'self_harm', 'harm_to_others', 'abuse_neglect')",
            name="risk_flag_category_known",
        ),
        CheckConstraint(
            "status IN ('open', 'acknowledged', 'dismissed')", name="risk_flag_status_known"
        ),
        CheckConstraint(
            "status = 'open' OR (decided_by IS NOT NULL AND reason_enc IS NOT NULL)",
            name="risk_flag_decision_has_reason",
        ),
        Index("ix_risk_flags_patient_status", "patient_id", "status"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="therapy_sessions.id", index=True, ondelete="CASCADE")
    patient_id: uuid.UUID = Field(foreign_key="patients.id", ondelete="CASCADE")
    report_id: uuid.UUID = Field(foreign_key="session_reports.id", ondelete="CASCADE")
    category: str = Field(sa_type=String(32))
    start_seconds: float  # the first utterance that raised it, for ordering and the console
    end_seconds: float
    body_enc: bytes = Field(sa_type=LargeBinary)  # {"evidence": [Source...], "note": str}
    status: str = Field(default=FlagStatus.open.value, sa_type=String(16))
    decided_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    reason_enc: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class WithheldSpan(SQLModel, table=True):
    """A stretch of a session the therapist marked clinical-only. Kept apart from the chunks
    so that re-chunking a recording cannot make it visible again."""

    __tablename__ = "withheld_spans"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="therapy_sessions.id", index=True, ondelete="CASCADE")
    patient_id: uuid.UUID = Field(foreign_key="patients.id", ondelete="CASCADE")
    start_seconds: float
    end_seconds: float
    created_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class TherapistProfile(SQLModel, table=True):
    """How a therapist writes notes: shapes the drafts' wording. Example notes must be
    de-identified (the console says so); they are sent to the local model only."""

    __tablename__ = "therapist_profiles"

    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    approach: str = Field(default="", sa_type=String(200))
    tone: str = Field(default="", sa_type=String(200))
    preferred_terms: str = Field(default="", sa_type=String(1000))
    example_notes: str = Field(default="", sa_type=Text)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
