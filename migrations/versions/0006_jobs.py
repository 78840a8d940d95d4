"""Jobs (the pipeline's truth), worker heartbeats, and the probe stage's output.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("recording_id", sa.Uuid(), _fk("recordings"), nullable=False),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("after_stage", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("run_after", TZ, nullable=False),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("lease_expires_at", TZ, nullable=True),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("output_version", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("recording_id", "stage", name="jobs_one_per_stage"),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'dead')",
            name="job_state_known",
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="job_progress_percent"),
    )
    op.create_index("ix_jobs_recording_id", "jobs", ["recording_id"])
    op.create_index("ix_jobs_patient_id", "jobs", ["patient_id"])
    op.create_index("ix_jobs_runnable", "jobs", ["state", "run_after"])
    op.create_table(
        "job_workers",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("seen_at", TZ, nullable=False),
    )
    op.create_table(
        "recording_probes",
        sa.Column("recording_id", sa.Uuid(), _fk("recordings"), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("container", sa.String(32), nullable=False),
        sa.Column("codec", sa.String(32), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("integrated_lufs", sa.Float(), nullable=False),
        sa.Column("loudness_range_lu", sa.Float(), nullable=False),
        sa.Column("peak_dbfs", sa.Float(), nullable=False),
        sa.Column("silent_fraction", sa.Float(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_recording_probes_patient_id", "recording_probes", ["patient_id"])


def downgrade() -> None:
    op.drop_table("recording_probes")
    op.drop_table("job_workers")
    op.drop_table("jobs")
