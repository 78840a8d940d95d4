"""Writing the search index: a recording's chunks (sealed), their vectors, and the embedding
generations that decide which model's vectors searches use.

Changing the embedding model must not take search down. The new model is registered as a
`building` generation and every recording's `embed` job is queued again; each embeds its
chunks with every live model. When no chunk that can be embedded lacks a new vector, the new
generation becomes `active` and the old one `retired` in one transaction, and the old vectors
are deleted (they are PHI; nothing should be kept longer than it serves).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select

from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import PatientCipher, patient_cipher
from appliance.jobs import service as jobs
from appliance.jobs.models import Job, JobState
from appliance.pipeline import documents
from appliance.recordings.models import Recording
from appliance.reports.withheld import apply_withheld
from appliance.retrieval.chunking import Chunk
from appliance.retrieval.models import (
    ChunkEmbedding,
    EmbeddingGeneration,
    GenerationState,
    TranscriptChunk,
)
from appliance.settings import Settings

logger = logging.getLogger("appliance.retrieval")

EMBED_STAGE = "embed"
LIVE = (GenerationState.active.value, GenerationState.building.value)


@dataclass(frozen=True)
class ChunkBody:
    text: str
    speakers: tuple[str, ...]
    roles: tuple[str, ...]


def seal_body(cipher: PatientCipher, chunk_id: uuid.UUID, chunk: Chunk) -> bytes:
    body = {"text": chunk.text, "speakers": list(chunk.speakers), "roles": list(chunk.roles)}
    return documents.seal(cipher, TranscriptChunk.__tablename__, chunk_id, body)


def open_body(cipher: PatientCipher, chunk_id: uuid.UUID, sealed: bytes) -> ChunkBody:
    body = documents.open_sealed(cipher, TranscriptChunk.__tablename__, chunk_id, sealed)
    return ChunkBody(body["text"], tuple(body["speakers"]), tuple(body["roles"]))


def replace_chunks(
    session: Session, store: KeyStore, recording: Recording, version: str, chunks: Sequence[Chunk]
) -> int:
    """The recording's chunks become `chunks` (in the caller's transaction; vectors of the old
    chunks go with them, and the recording's `embed` job makes new ones)."""
    session.execute(
        delete(TranscriptChunk).where(col(TranscriptChunk.recording_id) == recording.id)
    )
    cipher = patient_cipher(store, recording.patient_id)
    for piece in chunks:
        chunk_id = uuid.uuid4()
        session.add(
            TranscriptChunk(
                id=chunk_id,
                recording_id=recording.id,
                session_id=recording.session_id,
                patient_id=recording.patient_id,
                version=version,
                ordinal=piece.index,
                start_seconds=piece.start,
                end_seconds=piece.end,
                word_count=piece.words,
                body_enc=seal_body(cipher, chunk_id, piece),
            )
        )
    session.flush()
    apply_withheld(session, recording.session_id)  # passages a therapist withheld stay hidden
    return len(chunks)


def recording_chunks(
    session: Session, store: KeyStore, recording: Recording
) -> list[tuple[uuid.UUID, str, set[str]]]:
    """(chunk id, text, model ids it already has a vector of) for each chunk, in order."""
    rows = session.exec(
        select(TranscriptChunk)
        .where(TranscriptChunk.recording_id == recording.id)
        .order_by(col(TranscriptChunk.ordinal))
    ).all()
    have: dict[uuid.UUID, set[str]] = {row.id: set() for row in rows}
    if rows:
        for chunk_id, model_id in session.execute(
            select(col(ChunkEmbedding.chunk_id), col(ChunkEmbedding.model_id)).where(
                col(ChunkEmbedding.chunk_id).in_(list(have))
            )
        ):
            have[chunk_id].add(model_id)
    cipher = patient_cipher(store, recording.patient_id)
    return [(row.id, open_body(cipher, row.id, row.body_enc).text, have[row.id]) for row in rows]


def add_vectors(
    session: Session,
    patient_id: uuid.UUID,
    model_id: str,
    vectors: Sequence[tuple[uuid.UUID, Any]],
) -> int:
    """Insert vectors once (a stage that runs twice writes nothing new), only for chunks that
    still exist (a re-chunk may have replaced them meanwhile)."""
    if not vectors:
        return 0
    alive = set(
        session.exec(
            select(TranscriptChunk.id).where(
                col(TranscriptChunk.id).in_([chunk_id for chunk_id, _ in vectors])
            )
        ).all()
    )
    values = [
        {
            "chunk_id": chunk_id,
            "model_id": model_id,
            "patient_id": patient_id,
            "dimension": len(vector),
            "embedding": [float(x) for x in vector],
        }
        for chunk_id, vector in vectors
        if chunk_id in alive
    ]
    if values:
        session.execute(insert(ChunkEmbedding).values(values).on_conflict_do_nothing())
    return len(values)


# Generations ---------------------------------------------------------------------------------


def live_generations(session: Session) -> list[EmbeddingGeneration]:
    return list(
        session.exec(
            select(EmbeddingGeneration)
            .where(col(EmbeddingGeneration.state).in_(LIVE))
            .order_by(col(EmbeddingGeneration.created_at))
        ).all()
    )


def active_generation(session: Session) -> EmbeddingGeneration | None:
    return session.exec(
        select(EmbeddingGeneration).where(EmbeddingGeneration.state == GenerationState.active.value)
    ).first()


def register(
    session: Session,
    name: str,
    model_id: str,
    dimension: int,
    *,
    keep_queued: uuid.UUID | None = None,
) -> bool:
    """Make `model_id` a live generation if it is not one: active when nothing is, else
    building, with every recording's embed job queued again (except `keep_queued`'s, the
    caller's own). Returns True when it started a re-embedding."""
    known = session.get(EmbeddingGeneration, model_id)
    if known is not None and known.state in LIVE:
        return False  # the common case, without taking the lock
    session.execute(text("LOCK TABLE embedding_generations IN SHARE ROW EXCLUSIVE MODE"))
    row = session.get(EmbeddingGeneration, model_id, populate_existing=True)
    if row is not None and row.state in LIVE:
        return False
    building = active_generation(session) is not None
    state = GenerationState.building if building else GenerationState.active
    if row is None:
        row = EmbeddingGeneration(
            model_id=model_id, model_name=name, dimension=dimension, state=state.value
        )
    row.state, row.dimension = state.value, dimension
    row.activated_at = None if building else jobs.now_utc()
    session.add(row)
    session.flush()
    if building:
        again = session.exec(
            select(Job)
            .where(Job.stage == EMBED_STAGE)
            .where(col(Job.state).in_([JobState.succeeded.value, JobState.running.value]))
            .with_for_update()
        ).all()
        for job in again:
            if job.recording_id != keep_queued:
                jobs.requeue(job)  # a running one loses its lease: its output is discarded
                session.add(job)
        logger.info("re-embedding started", extra={"model": model_id, "jobs": len(again)})
    return building


def complete(session: Session, model_id: str) -> bool:
    """True when every chunk that can be embedded has a vector of `model_id` (chunks whose
    embed job was cancelled for want of consent, or is dead, do not hold the switch up)."""
    missing = (
        select(TranscriptChunk.id)
        .join(Job, (col(Job.recording_id) == col(TranscriptChunk.recording_id)))
        .where(
            Job.stage == EMBED_STAGE,
            col(Job.state).not_in([JobState.cancelled.value, JobState.dead.value]),
        )
        .where(
            ~exists().where(
                col(ChunkEmbedding.chunk_id) == col(TranscriptChunk.id),
                col(ChunkEmbedding.model_id) == model_id,
            )
        )
    )
    return not bool(session.execute(select(exists(missing))).scalar())


def maybe_activate(session: Session) -> str | None:
    """Switch to a building generation once it is complete; returns its model id if so."""
    session.execute(text("LOCK TABLE embedding_generations IN SHARE ROW EXCLUSIVE MODE"))
    for row in live_generations(session):
        if row.state != GenerationState.building.value or not complete(session, row.model_id):
            continue
        old = active_generation(session)
        if old is not None:
            session.execute(
                update(EmbeddingGeneration)
                .where(col(EmbeddingGeneration.model_id) == old.model_id)
                .values(state=GenerationState.retired.value)
            )
            session.execute(
                delete(ChunkEmbedding).where(col(ChunkEmbedding.model_id) == old.model_id)
            )
        session.execute(
            update(EmbeddingGeneration)
            .where(col(EmbeddingGeneration.model_id) == row.model_id)
            .values(state=GenerationState.active.value, activated_at=jobs.now_utc())
        )
        logger.info("embedding model switched", extra={"model": row.model_id})
        return row.model_id
    return None


def sync(session: Session, settings: Settings, embedder: Callable[[Settings, str], Any]) -> bool:
    """At worker start: when the configured model differs from the live ones, start the
    re-embedding. Before anything was ever embedded there is nothing to do (the first embed
    job registers its model). Returns True when a re-embedding started."""
    live = live_generations(session)
    name = settings.retrieval.embedder
    if not live or any(g.model_name == name for g in live):
        return False
    model = embedder(settings, name)
    started = register(session, name, model.model_id, model.dimension)
    session.commit()
    return started
