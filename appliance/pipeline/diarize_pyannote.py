"""The pyannote.audio `Diarizer` backend (clinic GPU profile).

The pipeline is loaded from a local folder laid out like the Hugging Face repository
`pyannote/speaker-diarization-community-1`: `config.yaml` naming the sub-models as
`$model/segmentation`, `$model/embedding` and `$model/plda`, which pyannote resolves relative to
the folder. pyannote falls back to the hub for anything it cannot find locally; this module
never lets it: the folder must exist before pyannote is touched, `HF_HUB_OFFLINE` is forced, and
a reference the folder cannot satisfy becomes a plain "not installed" error for clinic IT
instead of a hub connection error.

Audio goes in as an in-memory waveform (recordings exist on disk only encrypted), so pyannote
never decodes a file and torchcodec is never needed. The pipeline is loaded once per worker
process and folder/device, and shared by every diarizer built on it: the speaker bounds are
arguments of each call, not part of the loaded model.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.errors import DomainError
from appliance.observability.loads import timed_model_load
from appliance.pipeline.speech import SAMPLE_RATE, SpeakerTurn

if TYPE_CHECKING:
    from appliance.pipeline.speech import Audio, Progress

CONFIG_FILE = "config.yaml"

# pyannote reads the recording twice: segmentation (one cheap pass), then one speaker embedding
# per chunk and local speaker (the slow part). Progress gives segmentation this share of the
# duration and embeddings the rest, so the bar moves at a roughly even pace.
SEGMENTATION_SHARE = 0.2

_pipelines: dict[tuple[str, str], Any] = {}
_pipelines_lock = threading.Lock()


class PyannoteModelMissing(DomainError):
    """The pyannote pipeline folder is missing or incomplete (see the README: offline install)."""


class PyannoteDiarizer:
    """Who spoke when, with pyannote.audio. Nothing is loaded until the first `diarize`."""

    def __init__(
        self,
        folder: Path,
        *,
        device: str = "cpu",
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.device = device
        self.min_speakers = min_speakers
        self.max_speakers = max_speakers
        self.model_id = f"pyannote/{self.folder.name}"

    def pipeline(self) -> Any:
        """The shared pyannote pipeline for this folder and device (loaded on first use)."""
        if not (self.folder / CONFIG_FILE).is_file():
            raise PyannoteModelMissing(
                f"diarization model {self.folder.name!r} is not installed: "
                f"{CONFIG_FILE} not found in {self.folder}"
            )
        key = (str(self.folder.resolve()), self.device)
        with _pipelines_lock:
            if key not in _pipelines:
                with timed_model_load(self.folder.name):
                    _pipelines[key] = _load(self.folder, self.device)
            return _pipelines[key]

    def diarize(self, audio: Audio, progress: Progress | None = None) -> list[SpeakerTurn]:
        if audio.ndim != 1:
            raise ValueError("audio must be a 1-D (mono) array")
        duration = len(audio) / SAMPLE_RATE
        pipeline = self.pipeline()
        if len(audio) == 0:
            if progress is not None:
                progress(0.0)
            return []

        import numpy as np
        import torch

        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        output = pipeline(
            {"waveform": waveform, "sample_rate": SAMPLE_RATE},
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
            hook=_ProgressHook(progress, duration) if progress is not None else None,
        )
        turns = to_turns(output, duration)
        if progress is not None:
            progress(duration)
        return turns


def to_turns(output: Any, duration: float) -> list[SpeakerTurn]:
    """pyannote's result as records, sorted by start and clipped to the recording.

    pyannote 4 returns a `DiarizeOutput` whose `speaker_diarization` is the Annotation (with
    overlapping turns, which the interface allows); 3.x and `legacy=True` return the bare
    Annotation. Labels are kept as pyannote gives them ("SPEAKER_00", ...).
    """
    annotation = getattr(output, "speaker_diarization", output)
    turns = []
    for segment, _track, label in annotation.itertracks(yield_label=True):
        start = max(0.0, float(segment.start))
        end = min(duration, float(segment.end))
        if end > start:
            turns.append(SpeakerTurn(start=start, end=end, speaker=str(label)))
    turns.sort(key=lambda t: (t.start, t.end, t.speaker))
    return turns


class _ProgressHook:
    """pyannote's `hook=` callback turned into seconds of audio, never going backwards.

    pyannote calls `hook(step, artefact, file=..., total=..., completed=...)`; only the two long
    steps carry `total`/`completed`. Segmentation's `completed` can overshoot `total` (it counts
    in whole batches), hence the clamp. Reporting during the run matters: each call renews the
    job's lease, and a long recording on CPU takes longer than one lease.
    """

    def __init__(self, progress: Progress, duration: float) -> None:
        self.progress, self.duration, self.last = progress, duration, -1.0

    def __call__(
        self,
        step: str,
        artefact: object = None,
        *,
        total: int | None = None,
        completed: int | None = None,
        **_: Any,
    ) -> None:
        if not total or completed is None:
            return
        fraction = min(max(completed / total, 0.0), 1.0)
        if step == "segmentation":
            done = SEGMENTATION_SHARE * fraction
        elif step == "embeddings":
            done = SEGMENTATION_SHARE + (1.0 - SEGMENTATION_SHARE) * fraction
        else:
            return
        seconds = done * self.duration
        if seconds > self.last:
            self.last = seconds
            self.progress(seconds)


def _load(folder: Path, device: str) -> Any:
    """Load the pipeline from `folder` only, with telemetry off, onto `device`."""
    # pyannote.audio 4 sends usage metrics (OpenTelemetry) unless this is set before its import;
    # the hub must never be tried for a model the folder lacks.
    os.environ["PYANNOTE_METRICS_ENABLED"] = "0"
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from pyannote.audio import Pipeline

    try:
        pipeline = Pipeline.from_pretrained(folder)
    except OSError as exc:  # a missing file, or a hub id pyannote tried to fetch (offline)
        missing = getattr(exc, "filename", None)
        why = (
            f"{missing} is missing"
            if missing  # else pyannote tried the hub: a hub id, or no `plda:` (4.x needs one)
            else f"{CONFIG_FILE} names a model by hub id, or lacks plda: $model/plda"
        )
        raise PyannoteModelMissing(
            f"diarization model {folder.name!r} is incomplete: {why}; every sub-model must be "
            "copied into the folder and named $model/<subfolder> in config.yaml (see README)"
        ) from exc
    if pipeline is None:  # pragma: no cover - only a hub download returns None
        raise PyannoteModelMissing(f"diarization model {folder.name!r} could not be loaded")
    pipeline.to(torch.device("cuda" if device == "cuda" else "cpu"))
    return pipeline
