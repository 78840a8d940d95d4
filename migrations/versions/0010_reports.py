"""AI session reports: versions, risk flags, clinical-only spans, therapist profiles; a report
job for every recording made before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def _user() -> sa.ForeignKey:
    return sa.ForeignKey("users.id")


def upgrade() -> None:
    op.create_table(
        "session_reports",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), _fk("therapy_sessions"), nullable=False),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("note_format", sa.String(16), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=True),
        sa.Column("prompt_hash", sa.String(64), nullable=True),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Uuid(), _user(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("approved_by", sa.Uuid(), _user(), nullable=True),
        sa.Column("approved_at", TZ, nullable=True),
        sa.UniqueConstraint("session_id", "version", name="session_reports_one_per_version"),
        sa.CheckConstraint(
            "status IN ('draft', 'approved', 'superseded')", name="session_report_status_known"
        ),
        sa.CheckConstraint("source IN ('ai', 'therapist')", name="session_report_source_known"),
        sa.CheckConstraint(
            "status <> 'approved' OR (approved_by IS NOT NULL AND approved_at IS NOT NULL)",
            name="session_report_approval_recorded",
        ),
    )
    op.create_index("ix_session_reports_session_id", "session_reports", ["session_id"])
    op.create_index("ix_session_reports_patient_id", "session_reports", ["patient_id"])
    op.create_index(
        "session_reports_one_approved",
        "session_reports",
        ["session_id"],
        unique=True,
        postgresql_where=sa.text("status = 'approved'"),
    )
    op.create_table(
        "risk_flags",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), _fk("therapy_sessions"), nullable=False),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("report_id", sa.Uuid(), _fk("session_reports"), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.Uuid(), _user(), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("reason_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.CheckConstraint(
            "category IN ('suicidal_ideation', 'self_harm', 'harm_to_others', 'abuse_neglect')",
            name="risk_flag_category_known",
        ),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'dismissed')", name="risk_flag_status_known"
        ),
        sa.CheckConstraint(
            "status = 'open' OR (decided_by IS NOT NULL AND reason_enc IS NOT NULL)",
            name="risk_flag_decision_has_reason",
        ),
    )
    op.create_index("ix_risk_flags_session_id", "risk_flags", ["session_id"])
    op.create_index("ix_risk_flags_patient_status", "risk_flags", ["patient_id", "status"])
    op.create_table(
        "withheld_spans",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), _fk("therapy_sessions"), nullable=False),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("created_by", sa.Uuid(), _user(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_withheld_spans_session_id", "withheld_spans", ["session_id"])
    op.create_table(
        "therapist_profiles",
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("approach", sa.String(200), nullable=False),
        sa.Column("tone", sa.String(200), nullable=False),
        sa.Column("preferred_terms", sa.String(1000), nullable=False),
        sa.Column("example_notes", sa.Text(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.execute(
        sa.text(
            "INSERT INTO jobs (id, recording_id, patient_id, stage, purpose, after_stage, "
            "state, attempts, max_attempts, progress, run_after, created_at, updated_at) "
            "SELECT gen_random_uuid(), recording_id, patient_id, 'report', 'ai_analysis', "
            "'attribute', 'queued', 0, max_attempts, 0, now(), now(), now() FROM jobs "
            "WHERE stage = 'attribute' ON CONFLICT DO NOTHING"
        )
    )


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE stage = 'report'")
    for table in ("therapist_profiles", "withheld_spans", "risk_flags", "session_reports"):
        op.drop_table(table)
