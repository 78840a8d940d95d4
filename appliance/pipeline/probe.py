"""The `probe` stage: decode the whole recording once and measure it (duration, channels,
sample rate, EBU R128 loudness, peak, how much of it is silent). Later stages and the console
use it to warn about recordings that are too quiet, clipped or mostly silence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from appliance.consent.models import Purpose
from appliance.jobs.runner import PermanentError, StageContext
from appliance.pipeline.models import RecordingProbe

SILENT_LUFS = -50.0
WINDOW_SECONDS = 0.4  # EBU R128 momentary loudness window


@dataclass(frozen=True)
class Measured:
    container: str
    codec: str
    duration_seconds: float
    sample_rate: int
    channels: int
    integrated_lufs: float
    loudness_range_lu: float
    peak_dbfs: float
    silent_fraction: float


class ProbeStage:
    name = "probe"
    purpose = Purpose.recording
    after: str | None = None
    version = "probe-1/ebur128"

    def run(self, context: StageContext) -> Measured:
        total = max(context.recording.duration_seconds, 0.001)
        with context.open_recording() as reader:
            return measure(reader, lambda seconds: context.report(int(100 * seconds / total)))

    def save(self, session: Session, context: StageContext, output: Measured) -> None:
        values = {
            "recording_id": context.recording.id,
            "patient_id": context.recording.patient_id,
            "version": self.version,
            **output.__dict__,
        }
        session.execute(insert(RecordingProbe).values(**values).on_conflict_do_nothing())


def measure(reader: Any, progress: Any = None, report_every: float = 30.0) -> Measured:
    """Decode through ffmpeg's ebur128 filter. `progress(seconds_done)` is called every
    `report_every` seconds of audio."""
    import av  # lazy: only workers decode
    import numpy as np

    try:
        container = av.open(reader, mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise PermanentError(f"the recording cannot be opened ({type(exc).__name__})") from None
    with container:
        if not container.streams.audio:
            raise PermanentError("the recording has no audio track")
        stream = container.streams.audio[0]
        graph = av.filter.Graph()
        source = graph.add_abuffer(template=stream)
        meter = graph.add("ebur128", "metadata=1")
        sink = graph.add("abuffersink")
        source.link_to(meter)
        meter.link_to(sink)
        graph.configure()
        seconds, next_report, peak = 0.0, report_every, 0.0
        blocks = silent = 0
        metered = 0.0  # seconds through the meter: momentary loudness needs a full window
        last: dict[str, str] = {}

        def pull() -> None:
            nonlocal peak, blocks, silent, last, metered
            while True:
                try:
                    frame = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                if not isinstance(frame, av.AudioFrame):
                    continue
                samples = frame.to_ndarray()
                if samples.size:
                    peak = max(peak, float(np.abs(samples).max()))
                metered += frame.samples / (frame.sample_rate or 1)
                measured = dict(frame.metadata)
                if "lavfi.r128.I" not in measured:
                    continue  # frames flushed at the end carry no measurement
                last = measured
                if metered >= WINDOW_SECONDS:
                    blocks += 1
                    silent += float(measured.get("lavfi.r128.M", "-inf")) < SILENT_LUFS

        try:
            for frame in container.decode(stream):
                seconds += frame.samples / (frame.sample_rate or 1)
                graph.push(frame)
                pull()
                if progress is not None and seconds >= next_report:
                    progress(seconds)
                    next_report += report_every
            graph.push(None)
            pull()
        except av.error.FFmpegError as exc:
            raise PermanentError(f"the recording does not decode ({type(exc).__name__})") from None
        if seconds <= 0:
            raise PermanentError("no audio could be decoded from the recording")
        return Measured(
            container=container.format.name.split(",")[0][:32],
            codec=(stream.codec_context.name or "unknown")[:32],
            duration_seconds=round(seconds, 3),
            sample_rate=int(stream.sample_rate or 0),
            channels=int(stream.channels or 0),
            integrated_lufs=_finite(last.get("lavfi.r128.I")),
            loudness_range_lu=_finite(last.get("lavfi.r128.LRA"), floor=0.0),
            peak_dbfs=round(20 * math.log10(peak), 2) if peak > 0 else -120.0,
            silent_fraction=round(silent / blocks, 3) if blocks else 1.0,
        )


def _finite(value: str | None, floor: float = -120.0) -> float:
    """ebur128 reports -inf / nan for silence; the table stores a floor instead."""
    try:
        number = float(value) if value is not None else floor
    except ValueError:
        return floor
    return round(number, 2) if math.isfinite(number) and number > floor else floor
