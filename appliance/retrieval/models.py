"""Retrieval tables: transcript chunks (sealed text), their vectors per embedding model, the
embedding generations (which model serves searches), and structured session facts.

Every row carries its patient, so every search is limited to one patient in SQL (a B-tree on
patient first, then the distance), and erasing a patient cascades through all of them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import CheckConstraint, DateTime, Index, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class TranscriptChunk(SQLModel, table=True):
    """One passage of a recording's transcript (see chunking.py). Times are seconds from the
    start of the session (a session's second recording continues where the first ended).
    The text and the speakers' labels are one sealed JSON document: relabelled speakers can
    carry names, which are PHI."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("recording_id", "ordinal", name="chunks_one_per_ordinal"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    recording_id: uuid.UUID = Field(foreign_key="recordings.id", ondelete="CASCADE")
    session_id: uuid.UUID = Field(foreign_key="therapy_sessions.id", index=True, ondelete="CASCADE")
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    version: str = Field(sa_type=String(64))
    ordinal: int
    start_seconds: float
    end_seconds: float
    word_count: int
    # False: clinical-only (the therapist withheld it); never retrievable by the patient.
    patient_visible: bool = True
    body_enc: bytes = Field(sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class ChunkEmbedding(SQLModel, table=True):
    """A chunk's vector under one embedding model. Vectors of two models are never compared:
    every query names the model, and the dimension is checked against the vector."""

    __tablename__ = "chunk_embeddings"
    __table_args__ = (
        Index("ix_chunk_embeddings_patient_model", "patient_id", "model_id"),
        CheckConstraint("vector_dims(embedding) = dimension", name="embedding_dimension_matches"),
    )

    chunk_id: uuid.UUID = Field(foreign_key="chunks.id", primary_key=True, ondelete="CASCADE")
    model_id: str = Field(primary_key=True, sa_type=String(200))
    patient_id: uuid.UUID = Field(foreign_key="patients.id", ondelete="CASCADE")
    dimension: int
    embedding: Any = Field(sa_type=Vector())
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class GenerationState(StrEnum):
    building = "building"  # being filled in the background; not searched yet
    active = "active"  # what searches use (at most one)
    retired = "retired"  # replaced; its vectors are deleted


class EmbeddingGeneration(SQLModel, table=True):
    """Which embedding model serves searches. A new model is `building` until every chunk has
    its vector, then it becomes `active` in one transaction and the old one is retired."""

    __tablename__ = "embedding_generations"
    __table_args__ = (
        CheckConstraint(
            "state IN ('building', 'active', 'retired')", name="embedding_generation_state_known"
        ),
        Index(
            "embedding_generations_one_active",
            "state",
            unique=True,
            postgresql_where="state = 'active'",
        ),
    )

    model_id: str = Field(primary_key=True, sa_type=String(200))
    model_name: str = Field(sa_type=String(200))  # the manifest name, to load it for queries
    dimension: int
    state: str = Field(sa_type=String(16))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    activated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class FactKind(StrEnum):
    homework = "homework"
    plan = "plan"


class SessionFact(SQLModel, table=True):
    """A structured fact of a session (a homework item, a plan), sealed. The report issue
    drafts them; only facts a therapist approved are shown to the patient, and they outrank
    raw passages for questions about homework."""

    __tablename__ = "session_facts"
    __table_args__ = (
        CheckConstraint("kind IN ('homework', 'plan')", name="session_fact_kind_known"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="therapy_sessions.id", index=True, ondelete="CASCADE")
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    kind: str = Field(sa_type=String(16))
    # Where in the session it was said (seconds), for the citation.
    start_seconds: float
    end_seconds: float
    body_enc: bytes = Field(sa_type=LargeBinary)  # {"text", "frequency", "due"}
    approved: bool = False
    approved_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    approved_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class HomeworkCheck(SQLModel, table=True):
    """A homework item the patient ticked off in the portal (their own note: no consent
    needed to keep it; erased with the patient)."""

    __tablename__ = "homework_checks"

    patient_id: uuid.UUID = Field(foreign_key="patients.id", primary_key=True, ondelete="CASCADE")
    fact_id: uuid.UUID = Field(foreign_key="session_facts.id", primary_key=True, ondelete="CASCADE")
    checked_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
