"""The pipeline: which stages a recording goes through, in order. The speech issue adds
transcribe, diarize, align, roles, chunk, embed and report after `probe`."""

from __future__ import annotations

from appliance.jobs.runner import Stage
from appliance.pipeline.probe import ProbeStage


def pipeline() -> dict[str, Stage]:
    """Stage name -> stage, in the order they run. Cheap: stages load models lazily."""
    stages: list[Stage] = [ProbeStage()]
    return {stage.name: stage for stage in stages}
