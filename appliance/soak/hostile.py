"""Hostile uploads (issue 10, item 2): a deterministic generator of malformed, hostile and a few
genuinely valid recordings from a seed, sent to both upload endpoints
(`POST /api/v1/sessions/{id}/recording` and the console form) by hostile_run.py, which checks
what is left behind; the media building blocks are in hostile_media.py.

Why a generator of our own and not a generic fuzzer: the dangerous inputs for an audio intake
are structural (declared lengths, decoder bombs, containers that are not audio, multipart
abuse), and a seed makes any failure reproducible with `appliance soak fuzz --seed S`.
The properties: no 5xx, every API refusal an RFC 7807 problem, 2xx only for decodable audio,
no rows, files or temporary files left by a refused upload, bounded time and memory each.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from appliance.soak.hostile_media import (
    flac_silence,
    id3,
    id3_zlib_bomb,
    mp4_box,
    ogg_page,
    opus_stream,
    sample,
    syncsafe,
    video_only,
    wav_with_chunk,
    zip_bomb,
)

CSRF = b"{{CSRF}}"  # replaced by the signed-in session's token when a form is sent


@dataclass(frozen=True)
class Hostile:
    """One upload. `valid`: True = genuinely valid audio (must be accepted), False = must be
    refused, None = either (a mutation that may still decode). `form_body`: a whole
    hand-made multipart body (multipart abuse); otherwise the runner builds the form."""

    category: str
    body: bytes
    filename: str = "upload.bin"
    content_type: str = "application/octet-stream"
    valid: bool | None = False
    form: bool = False
    form_body: bytes | None = None
    form_type: str = ""


# -- the categories --------------------------------------------------------------------------

Make = Callable[[random.Random], Hostile]
KINDS = ("wav", "mp3", "m4a", "ogg", "webm", "flac")
NOT_AUDIO: dict[str, Callable[[random.Random], bytes]] = {
    "zip": lambda r: b"PK\x03\x04" + r.randbytes(200),
    "pdf": lambda r: b"%PDF-1.7\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF",
    "png": lambda r: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + r.randbytes(64),
    "elf": lambda r: b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + r.randbytes(100),
    "html": lambda r: b"<!doctype html><script>alert(1)</script>" * 20,
    "gzip": lambda r: b"\x1f\x8b\x08\x00" + r.randbytes(100),
    "json": lambda r: b'{"audio": true, "a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "svg": lambda r: b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>",
}


def _valid(r: random.Random) -> Hostile:
    kind = r.choice(KINDS)
    return Hostile("valid", sample(kind), f"take.{kind}", f"audio/{kind}", True)


def _truncated(r: random.Random) -> Hostile:
    kind = r.choice(KINDS)
    whole = sample(kind)
    cut = r.randint(1, min(200, len(whole) - 1))  # a wav cut past its header is still audio
    return Hostile("truncated header", whole[:cut], valid=None if kind == "wav" else False)


def _wrong_magic(r: random.Random) -> Hostile:
    whole = bytearray(sample(r.choice(KINDS)))
    whole[0:4] = r.choice([b"RIFX", b"OggT", b"fLaD", b"\x00\x00\x00\x00", r.randbytes(4)])
    return Hostile("wrong magic", bytes(whole), valid=None)


def _huge_length(r: random.Random) -> Hostile:
    pcm = r.randbytes(r.randint(0, 4000))
    wav = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    bodies = [
        b"RIFF\xff\xff\xff\xffWAVE" + wav + b"data\xf0\xff\xff\xff" + pcm,
        b"RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\xff" + pcm,
        b"RIFF\x00\x00\x00\x00WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 0, 0, 0, 0, 0) + pcm,
        b"RIFF\xff\xff\xff\xffWAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 65535, 4000000000, 1, 65535, 64)
        + b"data\x00\x10\x00\x00"
        + pcm,
        id3(0x0FFFFFFF) + pcm,
        id3(r.randint(1, 2**28 - 1), r.randbytes(100)) + sample("mp3")[:500],
        mp4_box(b"ftyp", b"M4A \x00\x00\x00\x00") + mp4_box(b"moov", pcm, 0xFFFFFFFF),
        mp4_box(b"ftyp", b"isom\x00\x00\x00\x00")
        + struct.pack(">I4sQ", 1, b"mdat", 2**63 - 1)
        + pcm,
        ogg_page([b"OpusHead\x01\x01" + b"\x00" * 10], 0, 2**62, 2) + b"OggS" + b"\xff" * 23,
        flac_silence(16000, 1.0, 4096, total=2**36 - 1),
        b"\x1aE\xdf\xa3\x01\xff\xff\xff\xff\xff\xff\xff" + pcm,
    ]
    return Hostile("huge declared length", r.choice(bodies), valid=None)


def _bomb(r: random.Random) -> Hostile:
    choice = r.randrange(5)
    if choice == 0:
        return Hostile("zip bomb", zip_bomb(), "archive.zip", "application/zip")
    if choice == 1:  # FFmpeg would inflate the tag frame: 3 GB and a minute before the fix
        return Hostile("zip bomb", id3_zlib_bomb(), "bomb.mp3", "audio/mpeg")
    if choice == 2:  # the same tag in a wav `id3 ` chunk after the samples
        return Hostile("zip bomb", wav_with_chunk(b"id3 ", id3_zlib_bomb()[: -len(sample("mp3"))]))
    if choice == 3:  # longer than the duration cap at a modest rate: refused after decoding
        return Hostile("decoder bomb", flac_silence(8000, 4.1 * 3600), "long.flac")
    return Hostile("decoder bomb", flac_silence(655350, 600), "fast.flac", "audio/flac")


def _not_audio(r: random.Random) -> Hostile:
    name = r.choice([*NOT_AUDIO, "mp4 video", "mkv video"])
    if name == "mp4 video":
        return Hostile("non-audio container", video_only("mp4"), "clip.mp4", "video/mp4")
    if name == "mkv video":
        return Hostile("non-audio container", video_only("matroska"), "clip.mkv")
    return Hostile("non-audio container", NOT_AUDIO[name](r), f"x.{name}", "audio/wav")


def _polyglot(r: random.Random) -> Hostile:
    kind = r.choice(KINDS)
    audio = sample(kind)
    choice = r.randrange(4)
    if choice == 0:
        return Hostile("polyglot", NOT_AUDIO["pdf"](r) + audio)
    if choice == 1:
        return Hostile("polyglot", b"\x89PNG\r\n\x1a\n" + audio)
    if choice == 2:
        return Hostile("polyglot", audio + zip_bomb(1) + NOT_AUDIO["html"](r), valid=None)
    tag = b"TXXX" + struct.pack(">I", 60) + b"\x00\x00\x03<script>alert(1)</script>" + b" " * 29
    return Hostile("polyglot", id3(len(tag), tag) + sample("mp3"), "x.html", "text/html", True)


def _metadata(r: random.Random) -> Hostile:
    choice = r.randrange(4)
    if choice == 0:  # up to 2 MiB of tag frames in front of a valid mp3, sizes syncsafe
        # (as v2.4 says) or plain (as some taggers write them): both are valid audio
        size = syncsafe(4001) if r.random() < 0.5 else struct.pack(">I", 4001)
        frames = b"".join(
            b"TXXX" + size + b"\x00\x00\x03" + b"x" * 4000 for _ in range(r.randint(10, 500))
        )
        return Hostile("huge metadata", id3(len(frames), frames) + sample("mp3"), valid=True)
    if choice == 1:  # an Opus tag header claiming 4 billion comments of 4 GiB each
        tags = b"OpusTags" + struct.pack("<I", 4) + b"fuzz" + b"\xff\xff\xff\xff" * 2
        return Hostile("huge metadata", opus_stream(r, 3, tags), valid=None)
    if choice == 2:  # boxes nested thousands deep
        box = b""
        for _ in range(r.randint(500, 5000)):
            box = mp4_box(r.choice([b"moov", b"trak", b"mdia", b"udta", b"meta"]), box)
        return Hostile("nested metadata", mp4_box(b"ftyp", b"isom\x00\x00\x00\x00") + box)
    deep = (
        b"\x1aE\xdf\xa3\x84\x42\x82\x81\x77" + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"
    )
    return Hostile(
        "nested metadata",
        deep + b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff" * r.randint(100, 3000),
    )


def _tiny_ogg_pages(r: random.Random) -> Hostile:
    return Hostile("many tiny Ogg pages", opus_stream(r, r.randint(200, 4000)), valid=None)


def _garbage_after_header(r: random.Random) -> Hostile:
    whole = sample(r.choice(KINDS))
    cut = r.randint(12, 400)
    return Hostile(
        "valid header + garbage", whole[:cut] + r.randbytes(r.randint(1, 60000)), valid=None
    )


def _bitflip(r: random.Random) -> Hostile:
    whole = bytearray(sample(r.choice(KINDS)))
    for _ in range(r.randint(1, 40)):
        whole[r.randrange(len(whole))] = r.randrange(256)
    return Hostile("bit flips", bytes(whole), valid=None)


def _empty_or_noise(r: random.Random) -> Hostile:
    choice = r.randrange(3)
    if choice == 0:
        return Hostile("empty or zero bytes", b"")
    if choice == 1:
        return Hostile("empty or zero bytes", b"\x00" * r.randint(1, 300000))
    return Hostile("random bytes", r.randbytes(r.randint(1, 200000)))


WEIRD_NAMES = [
    "../../etc/passwd",
    "..\\..\\boot.ini",
    "a" * 255,
    "x" * 300,
    "con.wav",
    "\u202egnp.wav",
    "名前.wav",
    "a\"b'c;d.wav",
    "%00.wav",
    "",
    " ",
    "a\tb.wav",
    "a/b/c.wav",
    "🎙️" * 40,
    "x.wav\r\nX-Injected: 1",
]
WEIRD_TYPES = [
    "",
    "audio/wav",
    "text/html",
    "application/x-www-form-urlencoded",
    "application/json",
    "multipart/form-data",
    "image/png; charset=utf-8",
    "audio/*",
    "x/" + "y" * 500,
]


def _weird_name(r: random.Random) -> Hostile:
    kind = r.choice(KINDS)
    name = r.choice(WEIRD_NAMES)
    # The API caps `filename` at 255 characters (400); the form truncates: both are no 5xx.
    valid = None if len(name) > 255 or "\r" in name else True
    return Hostile("weird filename or type", sample(kind), name, r.choice(WEIRD_TYPES), valid)


def _multipart(r: random.Random) -> Hostile:
    audio, b = sample("wav"), b"fuzzb"

    def part(name: bytes, value: bytes, filename: bytes | None = None) -> bytes:
        extra = b'; filename="' + filename + b'"' if filename is not None else b""
        return (
            b"--"
            + b
            + b'\r\nContent-Disposition: form-data; name="'
            + name
            + b'"'
            + extra
            + b"\r\n\r\n"
            + value
            + b"\r\n"
        )

    csrf, rec = part(b"csrf_token", CSRF), part(b"recording", audio, b"a.wav")
    end = b"--" + b + b"--\r\n"
    bodies = {
        "no closing boundary": (csrf + rec, None),
        "file before token": (rec + csrf + end, False),
        "no token": (rec + end, False),
        "wrong token": (part(b"csrf_token", b"nope") + rec + end, False),
        "too many parts": (csrf + part(b"x", b"1") * 10 + rec + end, False),
        "two files": (csrf + rec + rec + end, None),
        "no file": (csrf + end, False),
        "huge part header": (b"--" + b + b"\r\nX: " + b"h" * 200000 + b"\r\n\r\n" + end, False),
        "no disposition": (csrf + b"--" + b + b"\r\n\r\n" + audio + b"\r\n" + end, False),
        "oversized token": (part(b"csrf_token", b"t" * 5000) + rec + end, False),
        "garbage": (r.randbytes(r.randint(0, 5000)), False),
        "only preamble": (b"preamble " * 100, False),
    }
    label = r.choice(sorted(bodies))
    body, valid = bodies[label]
    kind = r.choice(
        [
            "multipart/form-data; boundary=fuzzb",
            "multipart/form-data",
            "multipart/form-data; boundary=other",
            "multipart/mixed; boundary=fuzzb",
            "text/plain",
            "multipart/form-data; boundary=" + "q" * 300,
        ]
    )
    if kind != "multipart/form-data; boundary=fuzzb":
        valid = False
    return Hostile("multipart abuse", b"", form=True, form_body=body, form_type=kind, valid=valid)


CATEGORIES: tuple[Make, ...] = (
    _valid,
    _truncated,
    _wrong_magic,
    _huge_length,
    _bomb,
    _not_audio,
    _polyglot,
    _metadata,
    _tiny_ogg_pages,
    _garbage_after_header,
    _bitflip,
    _empty_or_noise,
    _weird_name,
    _multipart,
)


def generate(count: int, seed: int) -> list[Hostile]:
    """`count` uploads, the categories in turn, every other one through the console form;
    the same seed gives the same bytes."""
    rng = random.Random(seed)  # noqa: S311 (reproducible fuzzing, not secrets)
    made = []
    for index in range(count):
        item = CATEGORIES[index % len(CATEGORIES)](random.Random(rng.getrandbits(64)))  # noqa: S311
        if item.form_body is None and index % 2:
            item = Hostile(
                item.category, item.body, item.filename, item.content_type, item.valid, True
            )
        made.append(item)
    return made
