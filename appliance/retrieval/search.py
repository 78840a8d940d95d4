"""Searching one patient's sessions: the retrieval the patient chat and `appliance search` share.

Order of work, each step narrowing the next:
1. Time: "last week", "the first session" resolve against the clinic's local date to a set of
   sessions (timeframe.py).
2. Scope, in SQL, in every statement: this patient's rows only, sessions the therapist
   released, `patient_chat` consent granted now, passages not withheld as clinical-only.
3. Vector ranking: exact cosine distance over the patient's own vectors of the active model
   (a B-tree on patient then a sort, never an approximate index with a post-filter).
4. Lexical ranking: BM25 over the same passages, decrypted.
5. Reciprocal rank fusion; approved homework facts first when the question is about homework.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.preferences import effective_settings
from appliance.consent.models import Purpose
from appliance.consent.service import granted_clause
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.recordings.models import TherapySession
from appliance.retrieval import facts, index, lexical, timeframe
from appliance.retrieval.embedder import Embedder, embedder_for
from appliance.retrieval.models import ChunkEmbedding, TranscriptChunk
from appliance.settings import Settings

logger = logging.getLogger("appliance.retrieval")


@dataclass(frozen=True)
class Hit:
    kind: Literal["passage", "fact"]
    id: uuid.UUID  # the chunk's or the fact's
    session_id: uuid.UUID
    session_date: date
    start: float
    end: float
    score: float
    text: str  # the whole passage (what a model may quote from)
    excerpt: str  # the line a citation shows


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    time_filter: timeframe.TimeFilter
    sessions_searched: int
    model_id: str | None  # the embedding model whose vectors ranked (None: lexical only)
    candidates: list[uuid.UUID] = field(default_factory=list)  # every chunk considered


def clinic_today(settings: Settings, session: Session) -> date:
    """Today in the clinic's time zone as the console has it now ("last week" is the
    clinic's week, whichever process asks)."""
    zone = effective_settings(settings, session).clinic.timezone
    return datetime.now(ZoneInfo(zone)).date()


def patient_scope(patient_id: uuid.UUID) -> list[ColumnElement[bool]]:
    """The conditions every patient-facing read of sessions repeats, in the same statement."""
    return [
        col(TherapySession.patient_id) == patient_id,
        col(TherapySession.released).is_(True),
        granted_clause(patient_id, Purpose.patient_chat),
    ]


def searchable_sessions(session: Session, patient_id: uuid.UUID) -> list[tuple[uuid.UUID, date]]:
    """(session id, date) of the patient's released, consented sessions that have passages."""
    has_chunks = exists().where(
        col(TranscriptChunk.session_id) == col(TherapySession.id),
        col(TranscriptChunk.patient_id) == patient_id,
    )
    rows = session.execute(
        select(col(TherapySession.id), col(TherapySession.session_date))
        .where(*patient_scope(patient_id))
        .where(has_chunks)
        .order_by(col(TherapySession.session_date), col(TherapySession.id))
    ).all()
    return [(row[0], row[1]) for row in rows]


def _chunks_in(patient_id: uuid.UUID, session_ids: Sequence[uuid.UUID]) -> list[Any]:
    """The scope of every read of passages: the session conditions, then the patient's own
    visible chunks of the chosen sessions (the query joins `TherapySession` on the chunk)."""
    return [
        *patient_scope(patient_id),
        col(TranscriptChunk.patient_id) == patient_id,
        col(TranscriptChunk.patient_visible).is_(True),
        col(TranscriptChunk.session_id).in_(list(session_ids)),
    ]


def _model_for(
    settings: Settings, generation: Any, embedder: Callable[[Settings, str], Embedder]
) -> Embedder | None:
    """The embedder for the active generation's vectors; None when there is none yet, or when
    the model installed under that name is not the one that made the vectors (comparing them
    would be meaningless: rank by words only until the index is rebuilt)."""
    if generation is None:
        return None
    model = embedder(settings, generation.model_name)
    if model.model_id != generation.model_id:
        logger.warning("embedding model mismatch", extra={"model": generation.model_id})
        return None
    return model


def search(
    session: Session,
    store: KeyStore,
    settings: Settings,
    patient_id: uuid.UUID,
    question: str,
    *,
    today: date | None = None,
    limit: int | None = None,
    embedder: Callable[[Settings, str], Embedder] = embedder_for,
) -> SearchResult:
    options = settings.retrieval
    limit = limit or options.results
    day = today or clinic_today(settings, session)
    when = timeframe.resolve(question, day)
    eligible = searchable_sessions(session, patient_id)
    chosen = set(timeframe.select_sessions(when, [(str(s), d) for s, d in eligible], day))
    scope = [(s, d) for s, d in eligible if str(s) in chosen]
    if not scope:
        return SearchResult([], when, 0, None)
    ids = [s for s, _ in scope]
    scoped = _chunks_in(patient_id, ids)
    rows = session.execute(
        select(TranscriptChunk, col(TherapySession.session_date))
        .join(TherapySession, col(TherapySession.id) == col(TranscriptChunk.session_id))
        .where(*scoped)
        .order_by(col(TranscriptChunk.start_seconds))
    ).all()
    cipher = patient_cipher(store, patient_id)
    chunks = [row[0] for row in rows]
    dates = {row[0].id: row[1] for row in rows}
    texts = [index.open_body(cipher, c.id, c.body_enc).text for c in chunks]
    position = {c.id: i for i, c in enumerate(chunks)}

    model = _model_for(settings, index.active_generation(session), embedder)
    by_vector: list[int] = []
    if model is not None and chunks:
        query = model.embed([question])[0]
        vector = [float(x) for x in query]
        distance = ChunkEmbedding.embedding.cosine_distance(vector)
        nearest = session.execute(
            select(col(ChunkEmbedding.chunk_id))
            .join(TranscriptChunk, col(TranscriptChunk.id) == col(ChunkEmbedding.chunk_id))
            .join(TherapySession, col(TherapySession.id) == col(TranscriptChunk.session_id))
            .where(*scoped)
            .where(
                col(ChunkEmbedding.patient_id) == patient_id,
                col(ChunkEmbedding.model_id) == model.model_id,
            )
            .order_by(distance)
            .limit(options.vector_candidates)
        ).scalars()
        by_vector = [position[chunk_id] for chunk_id in nearest if chunk_id in position]
    by_words = lexical.bm25_ranking(question, texts)[: options.vector_candidates]
    fused = lexical.fuse([by_vector, by_words], options.rrf_k)

    hits = [
        Hit(
            "fact",
            fact.id,
            fact.session_id,
            fact.session_date,
            fact.start,
            fact.end,
            1.0,
            fact.sentence,
            fact.sentence,
        )
        for fact in facts.approved_for(
            session, store, patient_id, scope, facts.kinds_asked(question)
        )
    ]
    for i, score in fused[: max(0, limit - len(hits))]:
        chunk = chunks[i]
        assert chunk.patient_id == patient_id  # belt and braces: SQL already limits this
        hits.append(
            Hit(
                "passage",
                chunk.id,
                chunk.session_id,
                dates[chunk.id],
                chunk.start_seconds,
                chunk.end_seconds,
                round(score, 6),
                texts[i],
                lexical.best_line(question, texts[i]),
            )
        )
    return SearchResult(
        hits[:limit],
        when,
        len(scope),
        model.model_id if model else None,
        [c.id for c in chunks],
    )


def audited_search(
    session: Session,
    store: KeyStore,
    settings: Settings,
    actor: Actor,
    patient_id: uuid.UUID,
    question: str,
    **options: Any,
) -> SearchResult:
    """`search`, recorded in the audit log (ids and a hash of the question, never its text)."""
    result = search(session, store, settings, patient_id, question, **options)
    record(
        session,
        actor,
        AuditEntry(
            "retrieval.search",
            "success",
            "patient",
            str(patient_id),
            patient_id,
            {
                "query_sha256": hashlib.sha256(question.encode()).hexdigest(),
                "results": [str(hit.id) for hit in result.hits],
                "sessions_searched": result.sessions_searched,
                "time_filter": bool(not result.time_filter.empty),
                "model": result.model_id,
            },
        ),
    )
    return result


def as_json(result: SearchResult) -> dict[str, Any]:
    """The shape `appliance search --json` prints (stable for scripts)."""
    when = result.time_filter
    return {
        "results": [
            {
                "session_id": str(hit.session_id),
                "session_date": hit.session_date.isoformat(),
                "start": round(hit.start, 2),
                "end": round(hit.end, 2),
                "score": hit.score,
                "excerpt": hit.excerpt,
                "kind": hit.kind,
            }
            for hit in result.hits
        ],
        "time_filter": None
        if when.empty
        else {
            "phrase": when.phrase,
            "from": when.dates.start.isoformat() if when.dates else None,
            "to": when.dates.end.isoformat() if when.dates else None,
            "pick": f"{when.pick.kind}:{when.pick.n}" if when.pick else None,
        },
        "sessions_searched": result.sessions_searched,
        "model": result.model_id,
    }
