"""`appliance bench`: figures for what an upload costs, beside the raw library call each wraps.

Benchmarks are not tests: nothing here asserts a speed. Each row is the median of `runs`.
"""

from __future__ import annotations

import io
import os
import resource
import statistics
import struct
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.crypto.envelope import new_data_key
from appliance.crypto.streams import DecryptingReader, EncryptingWriter, FileContext
from appliance.recordings.probe import probe

MIB = 1024 * 1024
PIECE = 64 * 1024  # what an HTTP server hands over per read


@dataclass(frozen=True)
class Row:
    name: str
    mib_per_s: float
    seconds: float
    note: str


def wav_stream(size_mib: int, rate: int = 48000, channels: int = 2) -> Iterator[bytes]:
    """A valid PCM WAV of about `size_mib`, produced piece by piece (never whole in memory)."""
    data_bytes = size_mib * MIB - 44
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )
    yield header
    tone = b"\x10\x27\xf0\xd8" * (PIECE // 4)  # a square wave, loud enough to decode
    sent = 0
    while sent < data_bytes:
        piece = tone[: min(PIECE, data_bytes - sent)]
        sent += len(piece)
        yield piece


def timed(runs: int, work: Callable[[], None]) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run(size_mib: int, runs: int, folder: Path) -> tuple[list[Row], int]:
    dek, context = new_data_key(), FileContext("recording", uuid.uuid4(), uuid.uuid4())
    block, aead = os.urandom(MIB), AESGCM(dek)
    encrypted, plain = folder / "bench.rec", folder / "bench.wav"
    with plain.open("wb") as handle:
        for piece in wav_stream(size_mib):
            handle.write(piece)

    def raw_gcm() -> None:
        for index in range(size_mib):
            aead.encrypt(index.to_bytes(12, "big"), block, b"bench")

    def appliance_write() -> None:
        with EncryptingWriter(dek, encrypted, context) as writer:
            for piece in wav_stream(size_mib):
                writer.write(piece)
            writer.commit()

    def raw_decode() -> None:
        with plain.open("rb") as handle:
            head = handle.read(64)
            handle.seek(0)
            probe(handle, head, 10**9)

    def appliance_decode() -> None:
        with DecryptingReader(dek, encrypted, context) as reader:
            head = reader.read(64)
            reader.seek(0)
            probe(reader, head, 10**9)

    rows = []
    for name, work, note in (
        ("aes-gcm, in memory (library)", raw_gcm, "AESGCM.encrypt on 1 MiB blocks"),
        ("encrypted upload write", appliance_write, "64 KiB pieces -> chunked GCM -> fsync"),
        ("pyav decode, plain file (library)", raw_decode, "av.open + full decode"),
        ("pyav decode, decrypting reader", appliance_decode, "the upload's audio proof"),
    ):
        seconds = timed(runs, work)
        rows.append(Row(name, size_mib / seconds if seconds else 0.0, seconds, note))
    for path in (encrypted, plain):
        path.unlink(missing_ok=True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rows, peak_kib


def report(size_mib: int, runs: int, folder: Path | None = None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        rows, peak_kib = run(size_mib, runs, Path(tmp))
    return {
        "size_mib": size_mib,
        "runs": runs,
        "rows": [row.__dict__ for row in rows],
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def render(result: dict[str, object]) -> str:
    out = io.StringIO()
    out.write(f"{result['size_mib']} MiB, median of {result['runs']} runs\n")
    for row in result["rows"]:  # type: ignore[attr-defined]
        out.write(
            f"  {row['name']:<36} {row['mib_per_s']:>8.1f} MiB/s  "
            f"{row['seconds']:>7.2f} s  {row['note']}\n"
        )
    out.write(f"  peak RSS of this process: {result['peak_rss_mib']} MiB\n")
    return out.getvalue()
