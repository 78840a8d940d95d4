"""`appliance bench pipeline FILE`: each speech stage's wall time, real-time factor and peak
memory, beside the raw faster-whisper call on the same audio in the same process.

The stage side does what the worker does: decrypt the recording chunk by chunk, decode, run
the configured backend with progress reporting, apply the quality guards and seal the output.
The raw side decodes the plain file and calls faster-whisper the same way (batched or not)
with the same options. Both use the same loaded model, so loading is not measured. The other
decoder (sequential or batched) is measured too: that is how the default was chosen.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.crypto.envelope import new_data_key
from appliance.crypto.service import PatientCipher
from appliance.crypto.streams import DecryptingReader, FileContext, encrypt_to_file
from appliance.settings import Settings

SAMPLE_RATE = 16000


class PeakRss:
    """Samples this process's resident memory every 20 ms while a block runs."""

    def __init__(self) -> None:
        import psutil

        self.process, self.peak = psutil.Process(), 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def measure(runs: int, work: Callable[[], Any]) -> tuple[float, float, Any]:
    """(median seconds, peak RSS MiB, last result)."""
    seconds, peak, result = [], 0, None
    for _ in range(runs):
        with PeakRss() as rss:
            started = time.perf_counter()
            result = work()
            seconds.append(time.perf_counter() - started)
        peak = max(peak, rss.peak)
    return statistics.median(seconds), peak / 2**20, result


def report(settings: Settings, audio_path: Path, runs: int) -> dict[str, Any]:
    from faster_whisper import BatchedInferencePipeline, decode_audio

    from appliance.pipeline import backends, documents
    from appliance.pipeline.align import align
    from appliance.pipeline.roles import assign_roles, speaker_prints
    from appliance.pipeline.whisper import WhisperTranscriber

    transcriber = backends.transcriber_for(settings)
    assert isinstance(transcriber, WhisperTranscriber)
    model = transcriber.model()
    options = settings.transcription
    common = transcriber.call_options()
    dek, patient = new_data_key(), uuid.uuid4()
    cipher, context = PatientCipher(patient, dek), FileContext("recording", uuid.uuid4(), patient)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=_scratch(settings)) as folder:
        encrypted = Path(folder) / "bench.rec"
        with audio_path.open("rb") as plain:
            encrypt_to_file(dek, iter(lambda: plain.read(1 << 20), b""), encrypted, context)

        def decoded() -> Any:
            with DecryptingReader(dek, encrypted, context) as reader:
                return backends.decode(reader)

        audio = decoded()
        duration = len(audio) / SAMPLE_RATE

        def raw_call() -> Any:
            segments, _ = model.transcribe(decode_audio(str(audio_path)), **common)
            return list(segments)

        def raw_batched() -> Any:
            pipeline = BatchedInferencePipeline(model)
            segments, _ = pipeline.transcribe(
                decode_audio(str(audio_path)), batch_size=options.batch_size, **common
            )
            return list(segments)

        def transcribe_stage() -> Any:
            _, generated = transcriber.transcribe(decoded())
            segments = list(generated)
            documents.seal(cipher, "transcripts", uuid.uuid4(), documents.segments_doc(segments))
            return segments

        diarizer = backends.diarizer_for(settings)
        encoder = backends.voice_encoder_for(settings)
        same, other = (raw_batched, raw_call) if transcriber.batched else (raw_call, raw_batched)
        mode = "BatchedInferencePipeline" if transcriber.batched else "WhisperModel.transcribe"
        other_mode = "sequential" if transcriber.batched else "batched"
        same()  # warm-up: first calls allocate
        rows: list[dict[str, Any]] = []

        def row(name: str, work: Callable[[], Any], note: str = "") -> Any:
            seconds, peak, result = measure(runs, work)
            rows.append(
                {
                    "name": name,
                    "seconds": round(seconds, 3),
                    "rtf": round(seconds / max(duration, 1e-9), 4),
                    "peak_rss_mib": round(peak, 1),
                    "note": note,
                }
            )
            return result

        row("raw faster-whisper transcribe", same, f"decode_audio + {mode} (as the stage)")
        row(f"raw, {other_mode} instead", other, "the other decoder, for comparison")
        segments = row("stage: transcribe", transcribe_stage, transcriber.model_id)
        turns = row("stage: diarize", lambda: diarizer.diarize(decoded()), diarizer.model_id)

        def attribute() -> Any:
            utterances = align(segments, turns)
            prints = speaker_prints(decoded(), turns, encoder)
            return utterances, assign_roles(turns, prints, None, 0.7)

        row("stage: attribute", attribute, "align + voiceprints + roles")
    raw = rows[0]["seconds"]
    stage = next(r for r in rows if r["name"] == "stage: transcribe")["seconds"]
    return {
        "audio": audio_path.name,
        "audio_seconds": round(duration, 2),
        "runs": runs,
        "device": transcriber.device,
        "batched": transcriber.batched,
        "rows": rows,
        "transcribe_vs_raw": round(stage / raw, 3) if raw else None,
    }


def _scratch(settings: Settings) -> str | None:
    return str(settings.data_dir) if settings.data_dir.is_dir() else None


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['audio']}: {result['audio_seconds']} s of audio, device "
        f"{result['device']}, {'batched' if result['batched'] else 'sequential'} decoder, "
        f"median of {result['runs']} runs",
        f"{'':34} {'seconds':>8} {'RTF':>7} {'peak RSS MiB':>13}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['name']:34} {r['seconds']:8.2f} {r['rtf']:7.3f} {r['peak_rss_mib']:13.1f}"
            f"  {r['note']}"
        )
    lines.append(
        f"transcribe stage / raw call: {result['transcribe_vs_raw']}x (goal: at most 1.10x)"
    )
    return "\n".join(lines)
