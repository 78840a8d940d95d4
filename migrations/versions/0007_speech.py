"""The speech pipeline's outputs: transcripts, diarizations, attributions (speakers and
roles), therapists' relabels and enrolled voiceprints.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def _output(name: str, *columns: sa.Column[object]) -> None:
    """A stage output keyed by (recording, version), with its patient for erasure and SQL
    authorisation."""
    op.create_table(
        name,
        sa.Column("recording_id", sa.Uuid(), _fk("recordings"), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        *columns,
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index(f"ix_{name}_patient_id", name, ["patient_id"])


def upgrade() -> None:
    _output(
        "transcripts",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("language_probability", sa.Float(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("segment_count", sa.Integer(), nullable=False),
        sa.Column("word_count", sa.Integer(), nullable=False),
        sa.Column("low_confidence_count", sa.Integer(), nullable=False),
    )
    _output(
        "diarizations",
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("speaker_count", sa.Integer(), nullable=False),
    )
    _output(
        "attributions",
        sa.Column("speaker_count", sa.Integer(), nullable=False),
        sa.Column("utterance_count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "speaker_relabels",
        sa.Column("recording_id", sa.Uuid(), _fk("recordings"), primary_key=True),
        sa.Column("speaker", sa.String(32), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("relabelled_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("relabelled_at", TZ, nullable=False),
        sa.CheckConstraint("role IN ('therapist', 'patient', 'other')", name="relabel_role_known"),
    )
    op.create_index("ix_speaker_relabels_patient_id", "speaker_relabels", ["patient_id"])
    op.create_table(
        "voiceprints",
        sa.Column("user_id", sa.Uuid(), _fk("users"), primary_key=True),
        sa.Column("model_id", sa.String(200), nullable=False),
        sa.Column("speech_seconds", sa.Float(), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for table in ("voiceprints", "speaker_relabels", "attributions", "diarizations"):
        op.drop_table(table)
    op.drop_table("transcripts")
