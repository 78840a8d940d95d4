"""The indexing stages after `attribute`: chunk (transcript -> sealed passages) and embed
(passages -> vectors of every live embedding model).

`chunk` needs `transcription` consent, like the transcript it restructures. `embed` needs
`patient_chat`: vectors exist only to answer the patient's questions, so without that consent
none are made (and granting it later resumes the job). Searches check consent again anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from appliance.consent.models import Purpose
from appliance.jobs.runner import StageContext
from appliance.pipeline.transcripts import recording_segments
from appliance.retrieval import index
from appliance.retrieval.chunking import Chunk, chunk
from appliance.retrieval.embedder import Embedder, embedder_for
from appliance.settings import Settings


class ChunkStage:
    name = "chunk"
    purpose = Purpose.transcription
    after: str | None = "attribute"
    version = "chunk-1"

    def run(self, context: StageContext) -> list[Chunk]:
        segments = context.read(
            lambda session: recording_segments(session, context.store, context.recording)
        )
        return chunk(segments)

    def save(self, session: Session, context: StageContext, output: list[Chunk]) -> None:
        index.replace_chunks(session, context.store, context.recording, self.version, output)


@dataclass(frozen=True)
class ModelVectors:
    name: str  # manifest name
    model_id: str
    dimension: int
    vectors: list[tuple[uuid.UUID, Any]]


class EmbedStage:
    name = "embed"
    purpose = Purpose.patient_chat
    after: str | None = "chunk"
    version = "embed-1"

    def __init__(self, embedder: Callable[[Settings, str], Embedder] | None = None) -> None:
        self.embedder = embedder or embedder_for

    def run(self, context: StageContext) -> list[ModelVectors]:
        def inputs(session: Session) -> tuple[list[Any], list[str]]:
            chunks = index.recording_chunks(session, context.store, context.recording)
            return chunks, [g.model_name for g in index.live_generations(session)]

        chunks, live = context.read(inputs)
        names = list(dict.fromkeys([*live, context.settings.retrieval.embedder]))
        made = []
        for step, name in enumerate(names):
            model = self.embedder(context.settings, name)
            todo = [
                (chunk_id, text) for chunk_id, text, have in chunks if model.model_id not in have
            ]
            vectors: Any = model.embed([text for _, text in todo]) if todo else []
            made.append(
                ModelVectors(
                    name,
                    model.model_id,
                    model.dimension,
                    [(chunk_id, vectors[i]) for i, (chunk_id, _) in enumerate(todo)],
                )
            )
            context.report(int(100 * (step + 1) / (len(names) + 1)))
        return made

    def save(self, session: Session, context: StageContext, output: list[ModelVectors]) -> None:
        recording = context.recording
        for model in output:
            index.register(
                session, model.name, model.model_id, model.dimension, keep_queued=recording.id
            )
            index.add_vectors(session, recording.patient_id, model.model_id, model.vectors)
        index.maybe_activate(session)
