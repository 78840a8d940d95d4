"""Therapist messages to the patient's portal inbox, sent only once a therapist approved them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def _user() -> sa.ForeignKey:
    return sa.ForeignKey("users.id")


def upgrade() -> None:
    op.create_table(
        "patient_messages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("session_id", sa.Uuid(), _fk("therapy_sessions"), nullable=True),
        sa.Column("therapist_id", sa.Uuid(), _user(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=True),
        sa.Column("prompt_hash", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("submitted_at", TZ, nullable=True),
        sa.Column("approved_by", sa.Uuid(), _user(), nullable=True),
        sa.Column("approved_at", TZ, nullable=True),
        sa.Column("sent_at", TZ, nullable=True),
        sa.Column("rejected_by", sa.Uuid(), _user(), nullable=True),
        sa.Column("rejected_at", TZ, nullable=True),
        sa.Column("read_at", TZ, nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'pending', 'approved', 'sent', 'rejected')",
            name="patient_message_state_known",
        ),
        sa.CheckConstraint(
            "source IN ('ai', 'template', 'therapist')", name="patient_message_source_known"
        ),
        sa.CheckConstraint(
            "state NOT IN ('approved', 'sent') OR "
            "(approved_by IS NOT NULL AND approved_at IS NOT NULL)",
            name="patient_message_sent_only_approved",
        ),
        sa.CheckConstraint(
            "state <> 'sent' OR sent_at IS NOT NULL", name="patient_message_sent_has_time"
        ),
        sa.CheckConstraint(
            "state <> 'rejected' OR (rejected_by IS NOT NULL AND rejected_at IS NOT NULL)",
            name="patient_message_rejection_recorded",
        ),
        sa.CheckConstraint(
            "read_at IS NULL OR state = 'sent'", name="patient_message_read_only_sent"
        ),
    )
    op.create_index("ix_patient_messages_session_id", "patient_messages", ["session_id"])
    op.create_index(
        "ix_patient_messages_patient_state", "patient_messages", ["patient_id", "state"]
    )


def downgrade() -> None:
    op.drop_table("patient_messages")
