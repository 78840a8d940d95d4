"""The embedded diarizer: who spoke when, without pyannote's weights.

Used by the demo and by boxes that have no pyannote bundle. It runs only models that ship in
ordinary packages (silero VAD and resemblyzer's GE2E speaker encoder), on CPU:

1. silero VAD finds the voiced regions;
2. resemblyzer embeds 1.6 s windows (its native crop length) every 0.2 s inside each region;
3. the full-length windows are clustered (average linkage, cosine distance threshold), which
   also decides the number of speakers, from 1 up to `max_speakers`;
4. each 50 ms frame is scored against every speaker centroid by the windows covering it and
   takes the best speaker; a majority filter within each region and a minimum turn length
   then remove flicker, so turns change inside a voiced region where the voice changes, not
   only at pauses.

On pyannote's sample recording this scores about 14 % DER (pyannote.metrics defaults: no
collar, overlap counted), against about 47 % for one voiceprint per VAD region. Most of what
remains is overlapping speech (never labelled twice here, about 8 points) and sub-second
interjections that a 1.6 s voiceprint cannot resolve.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.pipeline.diarize_clustering import (
    ClusterSettings,
    absorb_short_runs,
    frame_scores,
    majority_filter,
    speaker_centroids,
)
from appliance.pipeline.speech import SAMPLE_RATE, Progress, SpeakerTurn
from appliance.pipeline.voiceprint import NATIVE_WINDOW_S, ResemblyzerEncoder, Span

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from appliance.pipeline.speech import Audio

    Matrix = npt.NDArray[np.float32]

# Share of the work spent in the VAD pass, to turn two passes into one progress figure.
_VAD_SHARE = 0.3


@dataclass(frozen=True)
class DiarizationTuning:
    """The knobs, in seconds unless named otherwise. Chosen on pyannote's sample and on
    synthesised two-voice dialogues (Piper vs espeak-ng), preferring values on a plateau where
    neighbouring values score the same over the single best value on one recording."""

    window_s: float = NATIVE_WINDOW_S
    # A short hop gives each frame several votes; 0.4 s was measurably worse on real speech.
    hop_s: float = 0.2
    # Windows shorter than this (whole short VAD regions) give noisy voiceprints: they are
    # labelled by the speakers found, but do not vote on who the speakers are.
    min_cluster_window_s: float = 1.0
    frame_s: float = 0.05
    # Where in a window its vote peaks (0 = start, 1 = end); see `frame_scores`.
    focus: float = 0.75
    smoothing_s: float = 1.0
    # Shorter runs inside continuous speech are absorbed by a neighbour; a whole voiced
    # region is kept if its frames favour their speaker by `keep_margin` standard deviations.
    min_turn_s: float = 0.6
    keep_margin: float = 1.0
    # Pauses up to this long between two turns of one speaker are kept inside the turn;
    # 0 keeps pauses out, which is what a DER without collar rewards.
    bridge_gap_s: float = 0.0
    vad_threshold: float = 0.5
    clustering: ClusterSettings = field(default_factory=ClusterSettings)


class EmbeddedDiarizer:
    """Satisfies `speech.Diarizer`. Models load on first use, shared with any
    `ResemblyzerEncoder` of the same models folder in this process."""

    model_id = "embedded-1/silero-vad+resemblyzer"

    def __init__(
        self,
        models_dir: Path,
        *,
        max_speakers: int = 4,
        device: str = "cpu",
        tuning: DiarizationTuning | None = None,
    ) -> None:
        if max_speakers < 1:
            raise ValueError("max_speakers must be at least 1")
        self.encoder = ResemblyzerEncoder(models_dir, device=device)
        self.max_speakers = max_speakers
        self.tuning = tuning or DiarizationTuning()

    def diarize(self, audio: Audio, progress: Progress | None = None) -> list[SpeakerTurn]:
        """Speaker turns, labelled SPEAKER_00, SPEAKER_01, ... in order of first appearance.
        `progress` gets an estimate of the seconds of audio done (VAD and embedding passes
        weighted by their cost), rising to the recording's duration."""
        import numpy as np

        tuning = self.tuning
        duration = len(audio) / SAMPLE_RATE

        def report(done: float) -> None:
            if progress is not None:
                progress(min(duration, done))

        regions = self.encoder.speech_regions(
            audio,
            threshold=tuning.vad_threshold,
            progress=lambda fraction: report(_VAD_SHARE * fraction * duration),
        )
        spans, embeddings = self.encoder.embed_windows(
            audio,
            regions,
            window_s=tuning.window_s,
            hop_s=tuning.hop_s,
            progress=lambda seconds: report(_VAD_SHARE * duration + (1 - _VAD_SHARE) * seconds),
        )
        if not spans:
            report(duration)
            return []
        durations = np.array([s.duration for s in spans])
        centroids = speaker_centroids(
            embeddings,
            durations >= tuning.min_cluster_window_s,
            max_speakers=self.max_speakers,
            settings=tuning.clustering,
        )
        turns = self._turns(regions, spans, _contrast(embeddings, centroids), duration)
        report(duration)
        return turns

    def _turns(
        self, regions: list[Span], spans: list[Span], contrast: Matrix, duration: float
    ) -> list[SpeakerTurn]:
        import numpy as np

        tuning = self.tuning
        step = tuning.frame_s
        n_frames = math.ceil(duration / step) + 1
        speakers = contrast.shape[1]
        scores, weight = frame_scores(
            [s.start for s in spans],
            [s.end for s in spans],
            contrast,
            n_frames,
            step,
            tuning.focus,
        )
        # Frames of each region; a frame belongs to the region its centre lies in.
        frame_region = np.full(n_frames, -1, dtype=np.int64)
        for index, region in enumerate(regions):
            first = math.floor(region.start / step + 0.5)
            end = max(first + 1, math.floor(region.end / step + 0.5))
            frame_region[first : min(end, n_frames)] = index
        voiced = np.flatnonzero(frame_region >= 0)
        covered = np.flatnonzero(weight > 0)
        if len(voiced) == 0 or len(covered) == 0:
            return []
        # A voiced frame no window reached (a region too short to embed) borrows the scores
        # of the nearest frame that was.
        nearest = covered[np.clip(np.searchsorted(covered, voiced), 0, len(covered) - 1)]
        voiced_scores = scores[np.where(weight[voiced] > 0, voiced, nearest)]

        labels = voiced_scores.argmax(axis=1).astype(np.int64)
        # A new region starts after a pause (frame gap) or where two regions touch.
        regions_of = frame_region[voiced]
        breaks = np.diff(regions_of, prepend=-1) != 0
        starts = [*np.flatnonzero(breaks).tolist(), len(voiced)]
        width = round(tuning.smoothing_s / step) | 1
        for first, end in itertools.pairwise(starts):
            labels[first:end] = majority_filter(labels[first:end], width, speakers)
        labels = absorb_short_runs(
            labels, voiced_scores, round(tuning.min_turn_s / step), breaks, tuning.keep_margin
        )
        return _label_turns(_frames_to_turns(voiced, labels, frame_region, regions, step), tuning)


def _contrast(embeddings: Matrix, centroids: Matrix) -> Matrix:
    """How much more each window resembles each speaker than the speakers' average, in
    standard deviations over the recording, so that `keep_margin` means the same whether the
    voices are far apart (different sexes) or close (two similar men)."""
    similarities = embeddings @ centroids.T
    contrast: Matrix = similarities - similarities.mean(axis=1, keepdims=True)
    spread = float(contrast.std())
    return contrast / spread if spread > 0 else contrast


def _frames_to_turns(
    voiced: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    frame_region: npt.NDArray[np.int64],
    regions: list[Span],
    step: float,
) -> list[tuple[float, float, int]]:
    """Contiguous frames of one speaker within one region become a turn; its ends are the
    region's exact ends where it touches them, frame edges where the speaker changes."""
    turns: list[tuple[float, float, int]] = []
    first = 0
    for i in range(1, len(voiced) + 1):
        if (
            i < len(voiced)
            and labels[i] == labels[first]
            and frame_region[voiced[i]] == frame_region[voiced[first]]
        ):
            continue
        index = int(frame_region[voiced[first]])
        region = regions[index]
        touches_start = first == 0 or frame_region[voiced[first - 1]] != index
        touches_end = i == len(voiced) or frame_region[voiced[i]] != index
        start = region.start if touches_start else float(voiced[first] - 0.5) * step
        end = region.end if touches_end else float(voiced[i - 1] + 0.5) * step
        if end > start:
            turns.append((start, end, int(labels[first])))
        first = i
    return turns


def _label_turns(
    raw: list[tuple[float, float, int]], tuning: DiarizationTuning
) -> list[SpeakerTurn]:
    """Bridge short pauses inside one speaker's talk and name speakers by first appearance."""
    merged: list[tuple[float, float, int]] = []
    for start, end, speaker in raw:
        if merged and merged[-1][2] == speaker and start - merged[-1][1] <= tuning.bridge_gap_s:
            merged[-1] = (merged[-1][0], end, speaker)
        else:
            merged.append((start, end, speaker))
    names: dict[int, str] = {}
    turns = []
    for start, end, speaker in merged:
        name = names.setdefault(speaker, f"SPEAKER_{len(names):02d}")
        turns.append(SpeakerTurn(start=round(start, 3), end=round(end, 3), speaker=name))
    return turns
