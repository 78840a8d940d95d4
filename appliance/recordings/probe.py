"""Proving an upload is audio by decoding it with PyAV (never by extension or MIME type).

The first bytes only choose the error: bytes no audio container starts with are 415 (not
audio at all); a known container that will not decode is 422 (corrupt or truncated).
"""

from __future__ import annotations

import io
import re
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


# Decoding work is bounded: at most this rate and this many channels (no recorder makes more)
# and so at most max_seconds x 96 kHz stereo of samples: a few MB of hand-made FLAC at 655 kHz
# otherwise decoded for minutes.
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
SAMPLES_PER_SECOND_BUDGET = 2 * 96_000


ID3_HEADER = re.compile(rb"ID3[\x03\x04][\x00-\xfe][\x00-\xff][\x00-\x7f]{4}")
MAX_TAGS = 64
MAX_TAG_FRAMES = 4096
FRAME_ID = re.compile(rb"[A-Z0-9]{4}")


def _refuse_compressed_id3(reader: BinaryIO | io.RawIOBase) -> None:
    """ID3v2 tags anywhere in the file (a wav `id3 ` chunk, an mp4 `ID32` box, mid-stream)
    are parsed by FFmpeg too, so any tag with a zlib-compressed frame is refused before
    decoding: no recorder writes one, and FFmpeg inflates it to the size it claims (half a
    megabyte of wav took 25 s and 1.5 GB). One pass over the file, decrypting as it reads."""
    tags, offset, tail = 0, 0, b""
    reader.seek(0)
    while piece := reader.read(1024 * 1024):
        window = tail + piece
        for found in ID3_HEADER.finditer(window):
            tags += 1
            if tags > MAX_TAGS:
                raise CorruptAudio("the recording carries too many ID3 tags")
            at = offset - len(tail) + found.start()
            if _has_compressed_frame(reader, at, found.group()):
                raise CorruptAudio(
                    "the recording's ID3 tag is unusable (compressed or too many frames)"
                )
        reader.seek(offset + len(piece))
        offset, tail = offset + len(piece), window[-9:]
    reader.seek(0)


def _has_compressed_frame(reader: BinaryIO | io.RawIOBase, at: int, header: bytes) -> bool:
    """Whether the v2.3/v2.4 tag at `at` has a zlib-compressed frame (or absurdly many),
    walking its frames the way FFmpeg does."""
    version, size = header[3], _syncsafe(header[6:10])
    reader.seek(at + 10)
    frames = reader.read(min(size, 16 * 1024 * 1024)) or b""
    position, count = 0, 0
    while position + 10 <= len(frames) and frames[position] != 0:
        count += 1
        if count > MAX_TAG_FRAMES:  # recorders write tens; walking millions is the attack
            return True
        compressed = frames[position + 9] & (0x08 if version == 4 else 0x80)
        if compressed and FRAME_ID.fullmatch(frames[position : position + 4]):
            return True  # (FFmpeg inflates named frames only; chance "ID3" bytes rarely name one)
        length = _frame_length(frames, position, version)
        if length is None:  # FFmpeg stops reading the tag here too
            return False
        position += 10 + length
    return False


def _syncsafe(raw: bytes) -> int:
    return sum((raw[i] & 0x7F) << (7 * (3 - i)) for i in range(4))


def _frame_length(frames: bytes, position: int, version: int) -> int | None:
    """FFmpeg's rule: v2.4 sizes are syncsafe, but some taggers write v2.3 (plain) sizes, so
    the one after which another frame id starts wins; neither: the tag ends."""
    plain = int.from_bytes(frames[position + 4 : position + 8], "big")
    if version == 3 or plain <= 0x7F:
        return plain
    safe = _syncsafe(frames[position + 4 : position + 8])
    if plain > len(frames) - position - 10:
        return safe
    for length in (safe, plain):
        start = position + 10 + length
        after = frames[start : start + 4]
        if not after or after == bytes(4) or FRAME_ID.fullmatch(after):  # end, padding, frame
            return length
    return None


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
    _refuse_compressed_id3(reader)
    try:
        container = av.open(reader, mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise CorruptAudio(f"the recording cannot be read ({type(exc).__name__})") from None
    with container:
        if not container.streams.audio:
            raise NotAudio("the file has no audio track")
        stream = container.streams.audio[0]
        seconds, frames, work = 0.0, 0, 0
        try:
            for frame in container.decode(stream):
                if not isinstance(frame, av.AudioFrame):
                    continue
                channels = len(frame.layout.channels)
                if frame.sample_rate > MAX_SAMPLE_RATE or channels > MAX_CHANNELS:
                    raise CorruptAudio("the recording's sample rate or channel count is unusable")
                seconds += frame.samples / (frame.sample_rate or 1)
                frames, work = frames + 1, work + frame.samples * channels
                if seconds > max_seconds or work > max_seconds * SAMPLES_PER_SECOND_BUDGET:
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
