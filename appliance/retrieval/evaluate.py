"""`appliance eval retrieval`: recall@1, recall@5 and MRR of the appliance's own search on a
labelled set of scripted sessions and questions (demo/retrieval/set.toml by default).

The set is loaded into a scratch appliance (its own embedded PostgreSQL in a temporary folder,
removed afterwards), never into the clinic's database. Scripts stand in for transcripts, so
the figure measures chunking, embedding and ranking, not speech recognition. A question counts
as found at rank r when the r-th result is from the expected session and contains the
expected passage.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from appliance.audit.service import Actor
from appliance.clinic import service as clinic
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientCreate, UserCreate
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import keystore_for
from appliance.db import open_database
from appliance.errors import Invalid
from appliance.instance import initialise
from appliance.paths import bundled_resource
from appliance.pipeline.schemas import SegmentPublic, WordPublic
from appliance.recordings import service as sessions
from appliance.recordings.models import Recording, TherapySession
from appliance.recordings.schemas import SessionCreate
from appliance.retrieval import chunking, index
from appliance.retrieval.embedder import embedder_for
from appliance.retrieval.models import TranscriptChunk
from appliance.retrieval.search import search
from appliance.settings import Settings, load_settings

EVALUATOR = Actor(role="cli", user_agent="appliance eval retrieval")
SPEAKERS = {"therapist": "SPEAKER_00", "patient": "SPEAKER_01"}
WORDS_PER_SECOND = 2.5  # conversational speech, for plausible chunk times
DEPTH = 10  # ranks looked at for MRR


def default_set() -> Path:
    return bundled_resource("demo/retrieval/set.toml", "demo/retrieval/set.toml")


@dataclass(frozen=True)
class Question:
    patient: str
    text: str
    session: str
    passage: str


def load_set(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        keys = {s["key"] for s in data["sessions"]}
        for q in data["questions"]:
            if q["session"] not in keys:
                raise Invalid(f"question {q['question']!r} names an unknown session")
        data["today"] = date.fromisoformat(data["today"])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise Invalid(f"{path.name} is not a retrieval set ({type(exc).__name__}: {exc})") from None
    return data


def script_segments(lines: list[list[str]]) -> list[SegmentPublic]:
    """Scripted lines as transcript segments with word times, as the speech stages make."""
    segments, clock = [], 0.0
    for role, line in lines:
        words = []
        for word in line.split():
            words.append(
                WordPublic(start=clock, end=clock + 0.3, text=word, probability=1.0, overlap=False)
            )
            clock += 1 / WORDS_PER_SECOND
        segments.append(
            SegmentPublic(
                start=words[0].start,
                end=words[-1].end,
                speaker=SPEAKERS[role],
                role=role,  # type: ignore[arg-type]
                text=line,
                confidence=1.0,
                low_confidence=False,
                flags=[],
                words=words,
            )
        )
        clock += 0.5  # a pause between turns
    return segments


@contextmanager
def scratch_appliance(settings: Settings) -> Iterator[tuple[Settings, Session, KeyStore]]:
    """A throwaway appliance (keys, embedded PostgreSQL, migrations) with the models and
    retrieval options of `settings`."""
    with tempfile.TemporaryDirectory(prefix="appliance-eval-") as folder:
        scratch = load_settings(
            data_dir=Path(folder) / "var",
            models_dir=settings.resolved_models_dir,
            retrieval=settings.retrieval.model_dump(),
            clinic=settings.clinic.model_dump(),
        )
        initialise(scratch)
        with open_database(scratch) as database, database.session() as session:
            yield scratch, session, keystore_for(scratch)


def load_into(
    session: Session, store: KeyStore, settings: Settings, data: dict[str, Any]
) -> dict[str, Any]:
    """Patients, consented and released sessions, chunks and vectors; returns key -> id."""
    therapist = clinic.add_user(
        session,
        EVALUATOR,
        UserCreate(email="therapist@eval.invalid", name="Eval Therapist", role=Role.therapist),
    )
    as_therapist = Actor(role="therapist", user_id=therapist.id)
    ids: dict[str, Any] = {}
    for patient in data["patients"]:
        made = clinic.add_patient(
            session,
            store,
            EVALUATOR,
            PatientCreate(name=patient["name"], therapist_email=therapist.email),
        )
        consent.change(
            session,
            EVALUATOR,
            made.id,
            [Purpose.recording, Purpose.transcription, Purpose.patient_chat],
            ConsentStatus.granted,
            ConsentMethod.paper,
        )
        ids[patient["key"]] = made.id
    embedder = embedder_for(settings)
    for entry in data["sessions"]:
        patient_id = ids[entry["patient"]]
        row = sessions.add_session(
            session,
            EVALUATOR,
            SessionCreate(
                patient_id=patient_id,
                session_date=date.fromisoformat(entry["date"]),
                therapist_id=therapist.id,
            ),
        )
        session.flush()
        therapy = session.get(TherapySession, row.id)
        assert therapy is not None
        sessions.release(session, as_therapist, therapy)
        segments = script_segments(entry["lines"])
        recording = Recording(
            id=uuid.uuid4(),
            session_id=row.id,
            patient_id=patient_id,
            size_bytes=0,
            sha256=hashlib.sha256(entry["key"].encode()).hexdigest(),
            container="script",
            codec="text",
            duration_seconds=segments[-1].end,
            sample_rate=0,
            channels=0,
        )
        session.add(recording)
        session.flush()
        index.replace_chunks(session, store, recording, "chunk-1", chunking.chunk(segments))
        session.flush()
        texts = index.recording_chunks(session, store, recording)
        vectors = embedder.embed([text for _, text, _ in texts])
        index.register(session, settings.retrieval.embedder, embedder.model_id, embedder.dimension)
        index.add_vectors(
            session,
            patient_id,
            embedder.model_id,
            list(zip([c for c, _, _ in texts], vectors, strict=True)),
        )
        ids[entry["key"]] = row.id
    session.commit()
    return ids


def evaluate(settings: Settings, path: Path | None = None) -> dict[str, Any]:
    source = path or default_set()
    data = load_set(source)
    questions = [
        Question(q["patient"], q["question"], q["session"], q["passage"]) for q in data["questions"]
    ]
    ranks: list[int | None] = []
    misses = []
    with scratch_appliance(settings) as (scratch, session, store):
        ids = load_into(session, store, scratch, data)
        names = {value: key for key, value in ids.items()}
        for question in questions:
            result = search(
                session,
                store,
                scratch,
                ids[question.patient],
                question.text,
                today=data["today"],
                limit=DEPTH,
            )
            rank = next(
                (
                    n
                    for n, hit in enumerate(result.hits, start=1)
                    if hit.session_id == ids[question.session] and question.passage in hit.text
                ),
                None,
            )
            ranks.append(rank)
            if rank is None or rank > 5:
                misses.append(
                    {
                        "question": question.text,
                        "expected": question.session,
                        "rank": rank,
                        "got": [names.get(hit.session_id, "?") for hit in result.hits[:5]],
                    }
                )
        model = index.active_generation(session)
        chunks = session.exec(select(func.count()).select_from(TranscriptChunk)).one()
    found = len(questions) or 1
    return {
        "set": source.name,
        "questions": len(questions),
        "sessions": len(data["sessions"]),
        "chunks": chunks,
        "recall_at_1": round(sum(r == 1 for r in ranks) / found, 4),
        "recall_at_5": round(sum(r is not None and r <= 5 for r in ranks) / found, 4),
        "mrr": round(statistics.fmean([1 / r if r else 0.0 for r in ranks] or [0.0]), 4),
        "model": model.model_id if model else None,
        "goal": "recall@5 >= 0.95",
        "misses": misses,
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['questions']} questions over {result['sessions']} sessions, {result['chunks']} "
        f"chunks ({result['set']}), "
        f"embedder {result['model']}",
        f"recall@1 {result['recall_at_1']:.2f}   recall@5 {result['recall_at_5']:.2f}   "
        f"MRR@{DEPTH} {result['mrr']:.3f}   (goal: {result['goal']})",
    ]
    for miss in result["misses"]:
        lines.append(
            f"  missed: {miss['question']!r} expected {miss['expected']}, rank {miss['rank']}, "
            f"top 5 from {', '.join(miss['got']) or 'nothing'}"
        )
    return "\n".join(lines)
