"""Transcript exports: WebVTT (with voice tags), SRT and plain text.

Low-confidence spans are exported marked "[unclear]" rather than dropped: the therapist who
exports needs to see that something was said there, and that the words may be wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from appliance.pipeline.schemas import SegmentPublic, TranscriptPublic

NAMES = {"therapist": "Therapist", "patient": "Patient", "other": "Other"}
MEDIA_TYPES = {
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


def speaker_name(segment: SegmentPublic) -> str:
    name = NAMES.get(segment.role or "", "Unknown")
    return name if segment.role != "other" else f"{name} ({segment.speaker})"


def _text(segment: SegmentPublic) -> str:
    return f"[unclear] {segment.text}" if segment.low_confidence else segment.text


def _clock(seconds: float, separator: str) -> str:
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def long_date(day: date) -> str:
    """ "12 November 2026": unambiguous in every locale (no 11/12 vs 12/11)."""
    return f"{day.day} {day:%B %Y}"


def minute_clock(seconds: float) -> str:
    """ "MM:SS" from the start of the session: how citations and the demo name a moment."""
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"


def _escape_vtt(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: TranscriptPublic) -> str:
    lines = ["WEBVTT", ""]
    for number, s in enumerate(transcript.segments, start=1):
        lines += [
            str(number),
            f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}",
            f"<v {_escape_vtt(speaker_name(s))}>{_escape_vtt(_text(s))}",
            "",
        ]
    return "\n".join(lines)


def to_srt(transcript: TranscriptPublic) -> str:
    lines = []
    for number, s in enumerate(transcript.segments, start=1):
        lines += [
            str(number),
            f"{_clock(s.start, ',')} --> {_clock(s.end, ',')}",
            f"{speaker_name(s)}: {_text(s)}",
            "",
        ]
    return "\n".join(lines)


def to_text(transcript: TranscriptPublic) -> str:
    """One paragraph per speaker turn, with its start time."""
    lines: list[str] = []
    current: tuple[str | None, str | None] | None = None
    for s in transcript.segments:
        if (s.speaker, s.role) != current:
            current = (s.speaker, s.role)
            stamp = _clock(s.start, ".")[:8]
            lines.append(f"\n[{stamp}] {speaker_name(s)}:")
        lines.append(_text(s))
    return "\n".join(lines).strip() + "\n"


EXPORTERS: dict[str, Callable[[TranscriptPublic], str]] = {
    "vtt": to_vtt,
    "srt": to_srt,
    "txt": to_text,
}
