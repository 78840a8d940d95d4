"""The pipeline: which stages a recording goes through, in order. Each names the stage it runs
after: the report hangs off `attribute` beside chunk and embed.

`report` is background work (it needs `appliance llm`): `appliance ingest --wait` waits for the
transcript and the index, not for it (`BACKGROUND`)."""

from __future__ import annotations

from appliance.jobs.runner import Stage
from appliance.pipeline.probe import ProbeStage
from appliance.pipeline.speech_stages import AttributeStage, DiarizeStage, TranscribeStage
from appliance.reports.stages import ReportStage
from appliance.retrieval.stages import ChunkStage, EmbedStage

BACKGROUND = frozenset({"report"})


def pipeline() -> dict[str, Stage]:
    """Stage name -> stage, in the order they run. Cheap: stages load models lazily."""
    stages: list[Stage] = [
        ProbeStage(),
        TranscribeStage(),
        DiarizeStage(),
        AttributeStage(),
        ChunkStage(),
        EmbedStage(),
        ReportStage(),
    ]
    return {stage.name: stage for stage in stages}
