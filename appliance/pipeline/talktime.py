"""Talk time: how the speaking time of a session divides between therapist and patient, in
total and over the session (time bins), and the geometry of its server-rendered SVG chart.

Computed from the attributed transcript segments (speaker roles applied, relabels included).
Segments without a voice (no speaker: e.g. a recogniser's hallucination over silence) count for
no one. Shares are of the therapist's and patient's time together; anyone else ("other") is
counted apart, so "therapist 42 %, patient 58 %" always adds up to 100.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

# Bin lengths in seconds: the smallest that gives at most MAX_BINS bars. A 50-minute session
# gets one bar a minute; a 30-second test recording one a second.
NICE_BINS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800)
MAX_BINS = 60
# The chart's drawing box (SVG user units; the SVG scales to its container).
WIDTH, HEIGHT, AXIS = 600.0, 160.0, 24.0


class Timed(Protocol):
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def role(self) -> str | None: ...


@dataclass(frozen=True)
class Bin:
    start: float
    end: float
    therapist: float
    patient: float
    other: float


@dataclass(frozen=True)
class Bar:
    """One bin drawn: the therapist's part at the bottom, the patient's stacked above it."""

    x: float
    width: float
    therapist_y: float
    therapist_height: float
    patient_y: float
    patient_height: float


@dataclass(frozen=True)
class TalkTime:
    bin_seconds: int
    bins: tuple[Bin, ...]
    therapist: float
    patient: float
    other: float

    @property
    def therapist_share(self) -> int | None:
        """Whole percent of the therapist's and patient's time that was the therapist's;
        None when neither spoke."""
        both = self.therapist + self.patient
        return None if both <= 0 else round(100 * self.therapist / both)

    @property
    def patient_share(self) -> int | None:
        share = self.therapist_share
        return None if share is None else 100 - share

    def bars(self) -> list[Bar]:
        """Each bin as a stacked bar; a bar's full height is the bin's whole length, so a
        quiet minute is a short bar and a minute of talk a full one."""
        if not self.bins:
            return []
        step = WIDTH / len(self.bins)
        gap = min(2.0, step * 0.2)
        drawn = []
        for index, item in enumerate(self.bins):
            length = max(item.end - item.start, 1e-9)
            therapist = min(HEIGHT, HEIGHT * item.therapist / length)
            patient = min(HEIGHT - therapist, HEIGHT * item.patient / length)
            drawn.append(
                Bar(
                    x=round(index * step + gap / 2, 2),
                    width=round(step - gap, 2),
                    therapist_y=round(HEIGHT - therapist, 2),
                    therapist_height=round(therapist, 2),
                    patient_y=round(HEIGHT - therapist - patient, 2),
                    patient_height=round(patient, 2),
                )
            )
        return drawn


def bin_size(duration: float) -> int:
    for seconds in NICE_BINS:
        if duration / seconds <= MAX_BINS:
            return seconds
    return NICE_BINS[-1]


def talk_time(
    segments: Iterable[Timed], duration: float, bin_seconds: int | None = None
) -> TalkTime:
    """Seconds spoken per role, in total and per bin of `bin_seconds` (chosen from the
    duration when not given). A segment that spans bins is split between them."""
    items = [s for s in segments if s.role is not None and s.end > s.start]
    duration = max([duration, *(s.end for s in items)], default=0.0)
    step = bin_seconds or bin_size(duration)
    count = max(1, -(-int(duration * 1000) // (step * 1000))) if duration > 0 else 0
    spoken = [{"therapist": 0.0, "patient": 0.0, "other": 0.0} for _ in range(count)]
    for segment in items:
        role = segment.role if segment.role in ("therapist", "patient") else "other"
        first = int(segment.start // step)
        last = min(count - 1, int(segment.end // step))
        for index in range(first, last + 1):
            overlap = min(segment.end, (index + 1) * step) - max(segment.start, index * step)
            if overlap > 0:
                spoken[index][role] += overlap
    bins = tuple(
        Bin(
            start=float(index * step),
            end=float(min(duration, (index + 1) * step)),
            therapist=round(seconds["therapist"], 3),
            patient=round(seconds["patient"], 3),
            other=round(seconds["other"], 3),
        )
        for index, seconds in enumerate(spoken)
    )
    return TalkTime(
        bin_seconds=step,
        bins=bins,
        therapist=round(sum(b.therapist for b in bins), 3),
        patient=round(sum(b.patient for b in bins), 3),
        other=round(sum(b.other for b in bins), 3),
    )
