"""The pipeline: which stages a recording goes through, in order. Later issues add chunk,
embed and report after `attribute`."""

from __future__ import annotations

from appliance.jobs.runner import Stage
from appliance.pipeline.probe import ProbeStage
from appliance.pipeline.speech_stages import AttributeStage, DiarizeStage, TranscribeStage


def pipeline() -> dict[str, Stage]:
    """Stage name -> stage, in the order they run. Cheap: stages load models lazily."""
    stages: list[Stage] = [ProbeStage(), TranscribeStage(), DiarizeStage(), AttributeStage()]
    return {stage.name: stage for stage in stages}
