"""The faster-whisper `Transcriber` backend.

The model is loaded once per worker process from the folder the manifest names (never from a
hub) and reused for every recording. By default the stage uses faster-whisper's
`BatchedInferencePipeline` (VAD-cut chunks decoded several at a time) on CUDA and on CPU:
`appliance bench pipeline` measured it 2.1-2.4x faster than the sequential decoder on a 2-core CPU
for a 284 s recording, at a similar word error rate. `[transcription] batched = false` picks
the sequential decoder (it conditions on the previous text and needs less memory).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.errors import DomainError
from appliance.observability.loads import timed_model_load
from appliance.pipeline.guards import flag_segments
from appliance.pipeline.speech import Segment, TranscriptInfo, Word
from appliance.settings import TranscriptionSettings

if TYPE_CHECKING:
    from appliance.pipeline.speech import Audio

_models: dict[tuple[str, str, str, int], Any] = {}
_models_lock = threading.Lock()


class ModelMissing(DomainError):
    """The configured model folder is not installed (run `appliance models install`)."""


def resolve_device(device: str) -> str:
    """`auto` means CUDA when CTranslate2 can see a GPU."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def compute_type_for(device: str, compute_type: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class WhisperTranscriber:
    """Transcribes with word timestamps; segments come out as the audio is decoded."""

    def __init__(self, folder: Path, options: TranscriptionSettings) -> None:
        self.folder = folder
        self.options = options
        self.device = resolve_device(options.device)
        self.compute_type = compute_type_for(self.device, options.compute_type)
        self.model_id = f"faster-whisper/{folder.name}/{self.compute_type}"

    @property
    def batched(self) -> bool:
        """The batched pipeline cuts the audio where the VAD hears speech; without the VAD
        filter it cannot cut recordings longer than 30 s, so the sequential decoder runs."""
        return self.options.batched and self.options.vad_filter

    def model(self) -> Any:
        """The shared WhisperModel for this folder and device (loaded on first use)."""
        if not (self.folder / "model.bin").is_file():
            raise ModelMissing(
                f"transcription model {self.folder.name!r} is not installed; "
                "run `appliance models install`"
            )
        key = (str(self.folder), self.device, self.compute_type, self.options.cpu_threads)
        with _models_lock:
            if key not in _models:
                from faster_whisper import WhisperModel

                with timed_model_load(self.folder.name):
                    _models[key] = WhisperModel(
                        str(self.folder),
                        device=self.device,
                        compute_type=self.compute_type,
                        cpu_threads=self.options.cpu_threads,
                        local_files_only=True,
                    )
            return _models[key]

    def call_options(self) -> dict[str, Any]:
        """faster-whisper's keyword arguments for this configuration (the bench's raw call
        passes the same ones)."""
        return {
            "language": None if self.options.language == "auto" else self.options.language,
            "beam_size": self.options.beam_size,
            "word_timestamps": True,
            "vad_filter": self.options.vad_filter,
        }

    def transcribe(self, audio: Audio) -> tuple[TranscriptInfo, Iterator[Segment]]:
        model = self.model()
        common = self.call_options()
        if self.batched:
            from faster_whisper import BatchedInferencePipeline

            raw, info = BatchedInferencePipeline(model).transcribe(
                audio, batch_size=self.options.batch_size, **common
            )
        else:
            raw, info = model.transcribe(audio, **common)
        about = TranscriptInfo(
            language=info.language,
            language_probability=float(info.language_probability),
            duration=float(info.duration),
        )
        return about, flag_segments(_convert(segment) for segment in raw)


def _convert(segment: Any) -> Segment:
    words = tuple(
        Word(float(w.start), float(w.end), str(w.word).strip(), float(w.probability))
        for w in segment.words or ()
        if str(w.word).strip()
    )
    return Segment(
        start=float(segment.start),
        end=float(segment.end),
        text=str(segment.text).strip(),
        words=words,
        avg_logprob=float(segment.avg_logprob),
        compression_ratio=float(segment.compression_ratio),
        no_speech_prob=float(segment.no_speech_prob),
    )
