"""The media building blocks of the hostile uploads (appliance/soak/hostile.py): small valid
recordings made with PyAV, and hand-made containers whose declared lengths, checksums and
compression flags are ours to choose (Ogg pages, FLAC frames, ID3 tags, MP4 boxes, zips)."""

from __future__ import annotations

import functools
import io
import random
import struct
import zlib
from typing import Any

MIB = 1024 * 1024


@functools.cache
def sample(kind: str) -> bytes:
    """One second of a tone in a container the appliance accepts (made with PyAV)."""
    import av
    import numpy as np

    fmt, codec, rate = {
        "wav": ("wav", "pcm_s16le", 16000),
        "mp3": ("mp3", "libmp3lame", 16000),
        "m4a": ("ipod", "aac", 16000),
        "ogg": ("ogg", "libopus", 48000),
        "webm": ("webm", "libopus", 48000),
        "flac": ("flac", "flac", 16000),
    }[kind]
    tone = (np.sin(np.arange(rate) * 2 * np.pi * 220 / rate) * 8000).astype(np.int16)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream: Any = out.add_stream(codec, rate=rate, layout="mono")
        step = 960 if codec == "libopus" else 1024
        for start in range(0, rate, step):
            frame = av.AudioFrame.from_ndarray(
                tone[start : start + step].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


@functools.cache
def video_only(fmt: str) -> bytes:
    """A short video with no audio track (mp4 or matroska): the right magic, no audio."""
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(5):
            image = np.full((32, 32, 3), index * 40, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def _crc(data: bytes, poly: int, bits: int) -> int:
    top, mask, crc = 1 << (bits - 1), (1 << bits) - 1, 0
    for byte in data:
        crc ^= byte << (bits - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


@functools.cache
def _ogg_table() -> tuple[int, ...]:
    return tuple(_crc(bytes([n]), 0x04C11DB7, 32) for n in range(256))


def ogg_page(packets: list[bytes], seq: int, granule: int = 0, kind: int = 0) -> bytes:
    """One Ogg page with a correct checksum (so the demuxer reads on, into what follows)."""
    lacing = b"".join(bytes([255] * (len(p) // 255) + [len(p) % 255]) for p in packets)
    head = b"OggS\x00" + bytes([kind]) + struct.pack("<qIIIB", granule, 7, seq, 0, len(lacing))
    page = bytearray(head + lacing + b"".join(packets))
    crc, table = 0, _ogg_table()
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) ^ byte) & 0xFF]
    page[22:26] = struct.pack("<I", crc)
    return bytes(page)


def opus_stream(rng: random.Random, pages: int, tags: bytes | None = None) -> bytes:
    head = b"OpusHead\x01\x01" + struct.pack("<HIhB", 312, 48000, 0, 0)
    tags = tags or b"OpusTags" + struct.pack("<I", 4) + b"fuzz" + struct.pack("<I", 0)
    out = [ogg_page([head], 0, 0, 2), ogg_page([tags], 1)]
    for seq in range(2, pages + 2):
        out.append(ogg_page([rng.choice([b"\xf8", rng.randbytes(rng.randint(1, 3))])], seq, seq))
    return b"".join(out)


@functools.cache
def flac_silence(rate: int, seconds: float, block: int = 65535, total: int | None = None) -> bytes:
    """Hand-made FLAC of constant (silent) frames: a few bytes per frame, any sample rate up
    to 655350 Hz: the decoder's work grows with rate x seconds, the file hardly at all."""
    frames = max(1, int(rate * seconds) // block)
    info = struct.pack(">HH", block, block) + b"\x00" * 6
    declared = frames * block if total is None else total
    packed = (rate << 44) | (0 << 41) | (15 << 36) | (declared & (2**36 - 1))
    info += packed.to_bytes(8, "big") + b"\x00" * 16
    out = [b"fLaC", bytes([0x80]) + len(info).to_bytes(3, "big") + info]
    for number in range(frames):
        utf = _utf8_number(number)
        head = b"\xff\xf8" + bytes([0x7E, 0x08]) + utf + struct.pack(">HH", block - 1, rate // 10)
        head += bytes([_crc(head, 0x07, 8)])
        body = head + b"\x00\x00\x00"
        out.append(body + struct.pack(">H", _crc(body, 0x8005, 16)))
    return b"".join(out)


def _utf8_number(n: int) -> bytes:
    return chr(n).encode("utf-8", "surrogatepass") if n < 0x110000 else b"\x00"


def syncsafe(size: int) -> bytes:
    return bytes((size >> s) & 0x7F for s in (21, 14, 7, 0))


def id3(size: int, frames: bytes = b"", version: int = 4) -> bytes:
    return b"ID3" + bytes([version, 0, 0]) + syncsafe(size) + frames


@functools.cache
def id3_zlib_bomb(declared: int = 256 * MIB) -> bytes:
    """An ID3v2.4 text frame flagged zlib-compressed: ~250 KiB that inflate to `declared`.
    One deflated MiB is repeated (a full flush resets the compressor), so making it is fast."""
    packer, block, check = (
        zlib.compressobj(9, zlib.DEFLATED, -15),
        b"A" * MIB,
        zlib.adler32(b"\x03"),
    )
    first = packer.compress(b"\x03") + packer.flush(zlib.Z_FULL_FLUSH)
    chunk = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    for _ in range(declared // MIB):
        check = zlib.adler32(block, check)
    deflated = b"\x78\xda" + first + chunk * (declared // MIB) + packer.flush()
    payload = struct.pack(">I", declared + 1) + deflated + struct.pack(">I", check)
    frame = b"TIT2" + syncsafe(len(payload)) + b"\x00\x09"
    return id3(len(frame) + len(payload), frame + payload) + sample("mp3")


@functools.cache
def zip_bomb(mib: int = 32) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("a.wav", "b.wav"):
            archive.writestr(name, b"\x00" * (mib * MIB))
    return buffer.getvalue()


def mp4_box(kind: bytes, body: bytes, size: int | None = None) -> bytes:
    return struct.pack(">I", len(body) + 8 if size is None else size) + kind + body


def wav_with_chunk(kind: bytes, body: bytes) -> bytes:
    chunks = sample("wav")[12:] + kind + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
