"""Voiceprints from resemblyzer's GE2E speaker encoder, and the silero VAD that feeds it.

The role-assignment step compares the therapist's enrolment with each diarized speaker, and
the embedded diarizer clusters windows of the same encoder's output, so both share one lazily
loaded copy of each model per process (`_load_encoder`, `_load_vad`): loading twice would cost
memory and seconds for no gain. Weights are read only from the appliance's models folder,
never from a hub. torch, resemblyzer and silero_vad are imported inside functions so that
importing this module stays cheap for the web process.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from appliance.pipeline.speech import SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from appliance.pipeline.speech import Audio

    Matrix = npt.NDArray[np.float32]

# resemblyzer's native "partial utterance": 160 mel frames of 10 ms. Its LSTM was trained on
# 1.6 s crops, so shorter windows give noisier voiceprints.
MEL_FRAMES_PER_SECOND = 100
NATIVE_WINDOW_S = 1.6
# resemblyzer's preprocessing normalises loudness to -30 dBFS; its input is a power mel
# spectrogram, so an unnormalised quiet speaker would look like a different voice.
TARGET_DBFS = -30.0
_BATCH = 64

# The silero model is stateful (get_speech_timestamps resets and advances its state), so two
# threads must not run it at once.
_VAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Span:
    """A stretch of the recording, in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@functools.cache
def _load_encoder(weights: Path, device: str) -> Any:
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device=device, verbose=False, weights_fpath=weights)


@functools.cache
def _load_vad(path: Path) -> Any:
    import torch

    # Importing silero_vad sets torch's global thread count to 1 as a side effect; undo it so
    # the rest of the process is not slowed down behind our back.
    threads = torch.get_num_threads()
    import silero_vad  # noqa: F401

    torch.set_num_threads(threads)
    model = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    model.eval()
    return model


def similarity(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cosine similarity of two voiceprints (1 = same direction)."""
    import numpy as np

    va = np.asarray(a, dtype=np.float64).ravel()
    vb = np.asarray(b, dtype=np.float64).ravel()
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb) / denom if denom > 0 else 0.0


class ResemblyzerEncoder:
    """Satisfies `speech.VoiceEncoder`; also the VAD and window embedder of the embedded
    diarizer, so that both run on the same loaded models."""

    model_id = "resemblyzer-ge2e"

    def __init__(self, models_dir: Path, *, device: str = "cpu") -> None:
        self.weights = models_dir / "resemblyzer-encoder" / "pretrained.pt"
        self.vad_path = models_dir / "silero-vad" / "silero_vad.jit"
        self.device = device

    def speech_regions(
        self,
        audio: Audio,
        *,
        threshold: float = 0.5,
        min_speech_s: float = 0.25,
        min_silence_s: float = 0.1,
        pad_s: float = 0.03,
        progress: Callable[[float], None] | None = None,
    ) -> list[Span]:
        """Voiced stretches found by silero VAD (its defaults: they match hand-made references
        within a few percent). `progress` gets the fraction of the audio scanned."""
        import torch
        from silero_vad import get_speech_timestamps

        if len(audio) < 512:
            return []
        model = _load_vad(self.vad_path)
        last = [0.0]

        def tick(percent: float) -> None:
            # silero calls back every 32 ms of audio; pass on about one call per percent.
            if progress is not None and (percent - last[0] >= 1.0 or percent >= 100.0):
                last[0] = percent
                progress(percent / 100.0)

        with _VAD_LOCK:
            stamps = get_speech_timestamps(
                torch.from_numpy(audio.astype("float32", copy=False)),
                model,
                threshold=threshold,
                sampling_rate=SAMPLE_RATE,
                min_speech_duration_ms=int(min_speech_s * 1000),
                min_silence_duration_ms=int(min_silence_s * 1000),
                speech_pad_ms=int(pad_s * 1000),
                progress_tracking_callback=tick,
            )
        return [Span(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]

    def embed_windows(
        self,
        audio: Audio,
        regions: Sequence[Span],
        *,
        window_s: float = NATIVE_WINDOW_S,
        hop_s: float = 0.4,
        progress: Callable[[float], None] | None = None,
    ) -> tuple[list[Span], Matrix]:
        """Voiceprints of sliding windows inside each region (a region shorter than a window
        is one window), so no window straddles a pause. Rows are L2-normalised.
        `progress` gets the end time, in seconds, of the last region embedded."""
        import numpy as np
        import torch
        from resemblyzer.audio import wav_to_mel_spectrogram

        encoder = _load_encoder(self.weights, self.device)
        width = round(window_s * MEL_FRAMES_PER_SECOND)
        hop = max(1, round(hop_s * MEL_FRAMES_PER_SECOND))
        spans: list[Span] = []
        rows: dict[int, Matrix] = {}
        full: list[tuple[int, Matrix]] = []

        def run(batch: list[tuple[int, Matrix]]) -> None:
            with torch.no_grad():
                mels = torch.from_numpy(np.stack([crop for _, crop in batch]))
                out = cast("Matrix", encoder(mels.to(encoder.device)).cpu().numpy())
            rows.update((index, row) for (index, _), row in zip(batch, out, strict=True))

        for region in regions:
            piece = audio[round(region.start * SAMPLE_RATE) : round(region.end * SAMPLE_RATE)]
            if len(piece) < SAMPLE_RATE // 10:
                continue
            mel = cast("Matrix", wav_to_mel_spectrogram(_normalise(piece)))
            frames = len(mel)
            if frames <= width:
                # Shorter than a window: one crop of its own length, run alone (the LSTM
                # takes any length, but a batch needs one).
                run([(len(spans), mel)])
                spans.append(Span(region.start, region.end))
            else:
                starts = list(range(0, frames - width + 1, hop))
                if starts[-1] != frames - width:
                    starts.append(frames - width)  # cover the region's end too
                for first in starts:
                    start = region.start + first / MEL_FRAMES_PER_SECOND
                    full.append((len(spans), mel[first : first + width]))
                    spans.append(Span(start, min(region.end, start + window_s)))
            while len(full) >= _BATCH:
                run(full[:_BATCH])
                del full[:_BATCH]
            if progress is not None:
                progress(region.end)
        if full:
            run(full)
        if not spans:
            return [], np.zeros((0, 256), dtype=np.float32)
        return spans, np.stack([rows[i] for i in range(len(spans))]).astype(np.float32)

    def embed(self, audio: Audio) -> np.ndarray:
        """The voiceprint of the voiced parts of `audio`: the normalised mean of its window
        voiceprints, weighted by window length. If the VAD hears no speech the whole clip is
        used: callers pass stretches they already believe to be speech (a diarized turn, an
        enrolment they checked), and failing a session over a VAD disagreement would be worse
        than a rougher voiceprint. Raises ValueError only for a clip under 0.1 s."""
        import numpy as np

        regions = self.speech_regions(audio) or [Span(0.0, len(audio) / SAMPLE_RATE)]
        spans, rows = self.embed_windows(audio, regions)
        if not spans:
            raise ValueError("too little audio to make a voiceprint from")
        weights = np.array([s.duration for s in spans], dtype=np.float32)
        mean = (rows * weights[:, None]).sum(axis=0)
        return cast("np.ndarray", (mean / np.linalg.norm(mean)).astype(np.float32))


def _normalise(piece: Audio) -> Audio:
    """Scale a region to resemblyzer's training loudness (both ways: a region's loudness says
    nothing about who speaks)."""
    import numpy as np

    rms = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
    if rms <= 1e-6:
        return piece
    gain = math.pow(10.0, TARGET_DBFS / 20.0) / rms
    return cast("Audio", (piece * gain).astype(np.float32))
