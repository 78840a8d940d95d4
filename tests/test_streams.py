"""Chunked file encryption for recordings."""

from __future__ import annotations

import io
import os
import random
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.crypto.envelope import DecryptionFailed, new_data_key
from appliance.crypto.streams import (
    HEADER,
    TAG,
    DecryptingReader,
    FileContext,
    decrypt_file,
    encrypt_to_file,
)

CHUNK = 4096
CONTEXT = FileContext("recording", uuid.uuid4(), uuid.uuid4())


def pieces(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("length", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 7])
def test_a_recording_round_trips_at_every_boundary(tmp_path: Path, length: int) -> None:
    dek, data = new_data_key(), os.urandom(length)
    path = tmp_path / "rec.enc"
    assert encrypt_to_file(dek, pieces(data), path, CONTEXT, chunk_size=CHUNK) == length
    assert b"".join(decrypt_file(dek, path, CONTEXT)) == data
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def sealed(tmp_path: Path, data: bytes) -> tuple[bytes, Path]:
    dek, path = new_data_key(), tmp_path / "rec.enc"
    encrypt_to_file(dek, [data], path, CONTEXT, chunk_size=CHUNK)
    return dek, path


def test_a_flipped_byte_fails_instead_of_returning_garbage(tmp_path: Path) -> None:
    dek, path = sealed(tmp_path, os.urandom(3 * CHUNK))
    raw = bytearray(path.read_bytes())
    raw[HEADER.size + CHUNK + 100] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(DecryptionFailed):
        b"".join(decrypt_file(dek, path, CONTEXT))


def test_dropping_the_last_chunk_or_reordering_chunks_fails(tmp_path: Path) -> None:
    dek, path = sealed(tmp_path, os.urandom(3 * CHUNK))
    raw = path.read_bytes()
    size = CHUNK + TAG
    header, chunks = (
        raw[: HEADER.size],
        [raw[HEADER.size + i * size : HEADER.size + (i + 1) * size] for i in range(3)],
    )
    path.write_bytes(header + b"".join(chunks[:2]))  # truncated: chunk 1 was not the last
    with pytest.raises(DecryptionFailed):
        b"".join(decrypt_file(dek, path, CONTEXT))
    assert len(raw) == HEADER.size + 3 * size
    path.write_bytes(header + chunks[1] + chunks[0] + chunks[2])
    with pytest.raises(DecryptionFailed):
        b"".join(decrypt_file(dek, path, CONTEXT))


def test_a_file_moved_to_another_recording_or_patient_fails(tmp_path: Path) -> None:
    dek, path = sealed(tmp_path, b"session audio")
    for other in (
        FileContext("recording", uuid.uuid4(), CONTEXT.patient_id),
        FileContext("recording", CONTEXT.object_id, uuid.uuid4()),
    ):
        with pytest.raises(DecryptionFailed):
            b"".join(decrypt_file(dek, path, other))


def test_a_failing_source_leaves_no_file_behind(tmp_path: Path) -> None:
    def broken_upload() -> Iterator[bytes]:
        yield os.urandom(3 * CHUNK)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        encrypt_to_file(new_data_key(), broken_upload(), tmp_path / "rec.enc", CONTEXT, CHUNK)
    assert list(tmp_path.iterdir()) == []


def test_memory_stays_constant_for_a_large_recording(tmp_path: Path) -> None:
    """256 MiB through 1 MiB chunks: Python allocations stay near a few chunks. (The 2 GB case
    behaves the same; it is left to benchmarks because of its disk and time cost.)"""
    dek, path, block = new_data_key(), tmp_path / "big.enc", os.urandom(64 * 1024)
    tracemalloc.start()
    try:
        written = encrypt_to_file(dek, (block for _ in range(4096)), path, CONTEXT)
        _, encrypt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = sum(len(chunk) for chunk in decrypt_file(dek, path, CONTEXT))
        _, decrypt_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == total == 256 * 1024 * 1024
    assert encrypt_peak < 8 * 1024 * 1024
    assert decrypt_peak < 8 * 1024 * 1024


def test_the_decrypting_reader_seeks_and_reads_like_the_plain_file(tmp_path: Path) -> None:
    dek, data = new_data_key(), os.urandom(5 * CHUNK + 123)
    path = tmp_path / "rec.enc"
    encrypt_to_file(dek, [data], path, CONTEXT, chunk_size=CHUNK)
    reader = DecryptingReader(dek, path, CONTEXT)
    plain = io.BytesIO(data)
    assert reader.seek(0, io.SEEK_END) == len(data)
    rng = random.Random(7)
    for _ in range(200):
        offset, size = rng.randrange(len(data) + 10), rng.randrange(1, 3 * CHUNK)
        reader.seek(offset)
        plain.seek(offset)
        assert reader.read(size) == plain.read(size)
    reader.close()


def test_a_file_cut_down_to_its_header_is_truncated_not_empty(tmp_path: Path) -> None:
    dek, path = sealed(tmp_path, b"session audio")
    path.write_bytes(path.read_bytes()[: HEADER.size + 5])
    with pytest.raises(DecryptionFailed, match="truncated"):
        DecryptingReader(dek, path, CONTEXT)
    with pytest.raises(DecryptionFailed, match="truncated"):
        b"".join(decrypt_file(dek, path, CONTEXT))
