"""The complete console and portal: portal invitations, clinic preferences set in the console,
each user's interface language, paper-consent evidence, and homework the patient checked off.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def upgrade() -> None:
    # Values an administrator changed in the console; anything absent comes from the file.
    op.add_column(
        "clinics",
        sa.Column(
            "preferences",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.add_column("users", sa.Column("locale", sa.String(16), nullable=True))
    op.create_table(
        "portal_invitations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
    )
    op.create_index("ix_portal_invitations_patient_id", "portal_invitations", ["patient_id"])
    op.create_table(
        "consent_evidence",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column(
            "consent_event_id",
            sa.BigInteger(),
            sa.ForeignKey("consent_events.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("file_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_as", sa.String(100), nullable=False, unique=True),
        sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_consent_evidence_patient_id", "consent_evidence", ["patient_id"])
    op.create_table(
        "homework_checks",
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), primary_key=True),
        sa.Column("fact_id", sa.Uuid(), _fk("session_facts"), primary_key=True),
        sa.Column("checked_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("homework_checks")
    op.drop_index("ix_consent_evidence_patient_id", table_name="consent_evidence")
    op.drop_table("consent_evidence")
    op.drop_index("ix_portal_invitations_patient_id", table_name="portal_invitations")
    op.drop_table("portal_invitations")
    op.drop_column("users", "locale")
    op.drop_column("clinics", "preferences")
