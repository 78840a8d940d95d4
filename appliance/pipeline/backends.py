"""Which backend each speech stage uses, built from settings and the model manifest.

Backends are created once per worker process and cached: loading a model takes seconds (tens
of seconds for large-v3), running it on one more recording does not. Tests pass their own
backends to the stages instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from appliance.jobs.runner import PermanentError
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.pipeline.speech import Audio, Diarizer, Transcriber, VoiceEncoder


def decode(source: IO[bytes] | Any | str | Path) -> Audio:
    """The whole recording as 16 kHz mono float32 (PyAV, through faster-whisper's decoder)."""
    import av
    from faster_whisper import decode_audio

    from appliance.pipeline.speech import SAMPLE_RATE

    try:
        audio: Audio = decode_audio(source, sampling_rate=SAMPLE_RATE)
    except (av.error.FFmpegError, ValueError) as exc:
        raise PermanentError(f"the recording cannot be decoded ({type(exc).__name__})") from None
    return audio


def transcriber_for(settings: Settings) -> Transcriber:
    return _transcriber(settings.resolved_models_dir / settings.transcription.model, settings)


def diarizer_for(settings: Settings) -> Diarizer:
    return _diarizer(settings)


def voice_encoder_for(settings: Settings) -> VoiceEncoder:
    return _encoder(settings.resolved_models_dir, _torch_device(settings.diarization.device))


@functools.cache
def _transcriber(folder: Path, settings: Settings) -> Transcriber:
    from appliance.pipeline.whisper import WhisperTranscriber

    return WhisperTranscriber(folder, settings.transcription)


@functools.cache
def _diarizer(settings: Settings) -> Diarizer:
    options = settings.diarization
    device = _torch_device(options.device)
    if options.backend == "pyannote":
        from appliance.pipeline.diarize_pyannote import PyannoteDiarizer

        folder = settings.resolved_models_dir / options.pyannote_model
        return PyannoteDiarizer(folder, device=device, max_speakers=options.max_speakers)
    from appliance.pipeline.diarize_embedded import EmbeddedDiarizer

    return EmbeddedDiarizer(
        settings.resolved_models_dir, max_speakers=options.max_speakers, device=device
    )


@functools.cache
def _encoder(models_dir: Path, device: str) -> VoiceEncoder:
    from appliance.pipeline.voiceprint import ResemblyzerEncoder

    return ResemblyzerEncoder(models_dir, device=device)


def _torch_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
