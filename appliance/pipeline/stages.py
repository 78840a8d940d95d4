"""The pipeline: which stages a recording goes through, in order. Each names the stage it runs
after, so a later stage (the report) can hang off `attribute` beside chunk and embed."""

from __future__ import annotations

from appliance.jobs.runner import Stage
from appliance.pipeline.probe import ProbeStage
from appliance.pipeline.speech_stages import AttributeStage, DiarizeStage, TranscribeStage
from appliance.retrieval.stages import ChunkStage, EmbedStage


def pipeline() -> dict[str, Stage]:
    """Stage name -> stage, in the order they run. Cheap: stages load models lazily."""
    stages: list[Stage] = [
        ProbeStage(),
        TranscribeStage(),
        DiarizeStage(),
        AttributeStage(),
        ChunkStage(),
        EmbedStage(),
    ]
    return {stage.name: stage for stage in stages}
