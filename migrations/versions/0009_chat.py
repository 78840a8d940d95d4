"""Patient chat: conversations, their sealed turns, crisis alerts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_conversations_patient_id", "conversations", ["patient_id"])
    op.create_table(
        "chat_turns",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("conversation_id", sa.Uuid(), _fk("conversations"), nullable=False),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.CheckConstraint("role IN ('patient', 'assistant')", name="chat_turn_role_known"),
    )
    op.create_index("ix_chat_turns_conversation_id", "chat_turns", ["conversation_id"])
    # The rate limit counts a patient's questions of the last hour.
    op.create_index(
        "ix_chat_turns_patient_created", "chat_turns", ["patient_id", "role", "created_at"]
    )
    op.create_table(
        "crisis_alerts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("turn_id", sa.Uuid(), _fk("chat_turns"), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("acknowledged_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("acknowledged_at", TZ, nullable=True),
    )
    op.create_index("ix_crisis_alerts_patient_id", "crisis_alerts", ["patient_id"])


def downgrade() -> None:
    for table in ("crisis_alerts", "chat_turns", "conversations"):
        op.drop_table(table)
