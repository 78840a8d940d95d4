"""Consent ledger (immutable rows) and therapy sessions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consent_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column(
            "patient_id",
            sa.Uuid(),
            sa.ForeignKey("patients.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("evidence_sha256", sa.String(64), nullable=True),
        sa.Column("ip", sa.String(45), nullable=True),
        sa.Column("user_agent", sa.String(256), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('granted', 'revoked')", name="consent_status_known"),
        sa.CheckConstraint(
            "method IN ('in_person', 'paper', 'portal')", name="consent_method_known"
        ),
    )
    op.create_index("ix_consent_events_patient_id", "consent_events", ["patient_id"])
    # History is never rewritten, by anyone (erasure deletes rows with the patient).
    op.execute(
        """
        CREATE FUNCTION consent_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'consent_events rows are immutable'
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events "
        "FOR EACH ROW EXECUTE FUNCTION consent_events_immutable()"
    )

    op.create_table(
        "therapy_sessions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column(
            "patient_id",
            sa.Uuid(),
            sa.ForeignKey("patients.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("therapist_id", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("session_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.Column("released_at", TS, nullable=True),
        sa.Column("released_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'recorded', 'cancelled')",
            name="therapy_session_status_known",
        ),
    )
    op.create_index("ix_therapy_sessions_patient_id", "therapy_sessions", ["patient_id"])
    op.create_index("ix_therapy_sessions_therapist_id", "therapy_sessions", ["therapist_id"])
    op.create_index("ix_therapy_sessions_session_date", "therapy_sessions", ["session_date"])


def downgrade() -> None:
    op.drop_table("therapy_sessions")
    op.drop_table("consent_events")
    op.execute("DROP FUNCTION consent_events_immutable()")
