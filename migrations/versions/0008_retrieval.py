"""Retrieval: transcript chunks, their vectors (pgvector) per embedding model, the embedding
generations, structured session facts; chunk and embed jobs for recordings made before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{table}.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "chunks",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("recording_id", sa.Uuid(), _fk("recordings"), nullable=False),
        sa.Column("session_id", sa.Uuid(), _fk("therapy_sessions"), nullable=False),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("word_count", sa.Integer(), nullable=False),
        sa.Column("patient_visible", sa.Boolean(), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("recording_id", "ordinal", name="chunks_one_per_ordinal"),
    )
    op.create_index("ix_chunks_patient_id", "chunks", ["patient_id"])
    op.create_index("ix_chunks_session_id", "chunks", ["session_id"])
    op.create_table(
        "chunk_embeddings",
        sa.Column("chunk_id", sa.Uuid(), _fk("chunks"), primary_key=True),
        sa.Column("model_id", sa.String(200), primary_key=True),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        # No fixed dimension: models differ. Searches are exact over one patient's rows (the
        # B-tree below), so no approximate index is needed; see `appliance bench search`.
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.CheckConstraint(
            "vector_dims(embedding) = dimension", name="embedding_dimension_matches"
        ),
    )
    op.create_index(
        "ix_chunk_embeddings_patient_model", "chunk_embeddings", ["patient_id", "model_id"]
    )
    op.create_table(
        "embedding_generations",
        sa.Column("model_id", sa.String(200), primary_key=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("activated_at", TZ, nullable=True),
        sa.CheckConstraint(
            "state IN ('building', 'active', 'retired')", name="embedding_generation_state_known"
        ),
    )
    op.create_index(
        "embedding_generations_one_active",
        "embedding_generations",
        ["state"],
        unique=True,
        postgresql_where="state = 'active'",
    )
    op.create_table(
        "session_facts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("session_id", sa.Uuid(), _fk("therapy_sessions"), nullable=False),
        sa.Column("patient_id", sa.Uuid(), _fk("patients"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("body_enc", sa.LargeBinary(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("approved_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("approved_at", TZ, nullable=True),
        sa.Column("created_by", sa.Uuid(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.CheckConstraint("kind IN ('homework', 'plan')", name="session_fact_kind_known"),
    )
    op.create_index("ix_session_facts_patient_id", "session_facts", ["patient_id"])
    op.create_index("ix_session_facts_session_id", "session_facts", ["session_id"])
    # Recordings made before this revision get the new stages too (queued behind `attribute`).
    for stage, purpose, after in (
        ("chunk", "transcription", "attribute"),
        ("embed", "patient_chat", "chunk"),
    ):
        op.execute(
            sa.text(
                "INSERT INTO jobs (id, recording_id, patient_id, stage, purpose, after_stage, "
                "state, attempts, max_attempts, progress, run_after, created_at, updated_at) "
                "SELECT gen_random_uuid(), recording_id, patient_id, :stage, :purpose, :after, "
                "'queued', 0, max_attempts, 0, now(), now(), now() FROM jobs "
                "WHERE stage = 'attribute' ON CONFLICT DO NOTHING"
            ).bindparams(stage=stage, purpose=purpose, after=after)
        )


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE stage IN ('chunk', 'embed')")
    for table in ("session_facts", "embedding_generations", "chunk_embeddings", "chunks"):
        op.drop_table(table)
