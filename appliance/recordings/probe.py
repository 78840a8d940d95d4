"""Proving an upload is audio by decoding it with PyAV (never by extension or MIME type).

The first bytes only choose the error: bytes no audio container starts with are 415 (not
audio at all); a known container that will not decode is 422 (corrupt or truncated).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

from appliance.errors import DomainError, Invalid


class NotAudio(DomainError):
    status_code = 415
    title = "Unsupported Media Type"


class EmptyUpload(DomainError):
    status_code = 400
    title = "Bad Request"


class TooLarge(DomainError):
    status_code = 413
    title = "Content Too Large"


class CorruptAudio(Invalid):
    """A recognised container that does not decode (422)."""


@dataclass(frozen=True)
class AudioInfo:
    container: str
    codec: str
    duration_seconds: float
    sample_rate: int
    channels: int


def looks_like_media(head: bytes) -> bool:
    """Magic numbers of the containers the appliance accepts: wav, mp3, m4a/aac, ogg/opus,
    webm, mp4/mov, flac."""
    return (
        (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
        or head[:3] == b"ID3"
        or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)  # MPEG / ADTS sync
        or head[:4] in (b"OggS", b"fLaC", b"\x1aE\xdf\xa3")
        or head[4:8] == b"ftyp"
    )


def probe(reader: BinaryIO | io.RawIOBase, head: bytes, max_seconds: float) -> AudioInfo:
    """Decode the first audio track to the end; its real duration, not the header's claim."""
    import av  # lazy: the web app imports this module, decoding happens per upload

    if not looks_like_media(head):
        raise NotAudio("the upload is not an audio or video recording")
    try:
        container = av.open(reader, mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise CorruptAudio(f"the recording cannot be read ({type(exc).__name__})") from None
    with container:
        if not container.streams.audio:
            raise NotAudio("the file has no audio track")
        stream = container.streams.audio[0]
        seconds, frames = 0.0, 0
        try:
            for frame in container.decode(stream):
                if not isinstance(frame, av.AudioFrame):
                    continue
                seconds += frame.samples / (frame.sample_rate or 1)
                frames += 1
                if seconds > max_seconds:
                    raise Invalid(f"the recording is longer than {max_seconds / 60:.0f} minutes")
        except av.error.FFmpegError as exc:
            raise CorruptAudio(f"the recording does not decode ({type(exc).__name__})") from None
        if frames == 0 or seconds <= 0:
            raise CorruptAudio("no audio could be decoded from the recording")
        return AudioInfo(
            container=container.format.name.split(",")[0][:32],
            codec=(stream.codec_context.name or "unknown")[:32],
            duration_seconds=round(seconds, 3),
            sample_rate=int(stream.sample_rate or 0),
            channels=int(stream.channels or 0),
        )
