"""Chunked AES-256-GCM for recordings: constant memory for any size, atomic on disk.

Format: a 20-byte header (magic, version, chunk size, random 8-byte nonce prefix), then chunks
of up to `chunk_size` plaintext bytes, each sealed with its own tag. A chunk's nonce is the
prefix plus its index; its associated data is the header, the file's context, its index and
whether it is the last chunk, so chunks cannot be reordered, dropped, swapped between files
or truncated away without the decryption failing.
"""

from __future__ import annotations

import fcntl
import io
import os
import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.crypto.atomic import fsync_dir, temp_path_for
from appliance.crypto.envelope import DecryptionFailed

MAGIC = b"APLR"
VERSION = 1
HEADER = struct.Struct(">4sBxxxI8s")  # magic, version, pad, chunk size, nonce prefix
TAG = 16
DEFAULT_CHUNK = 1024 * 1024
MAX_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class FileContext:
    kind: str  # e.g. "recording"
    object_id: uuid.UUID
    patient_id: uuid.UUID
    key_version: int = 1

    def associated_data(self) -> bytes:
        return f"file|{self.kind}|{self.object_id}|{self.patient_id}|{self.key_version}".encode()


class EncryptingWriter:
    """Push-style encryption into `destination`: `write()` as bytes arrive (an upload),
    `commit()` when they end. Until `commit()` the data sits in a hidden temp file; `abort()`
    (or any exception inside `with`) removes it, so no partial file ever has the real name."""

    def __init__(
        self, dek: bytes, destination: Path, context: FileContext, chunk_size: int = DEFAULT_CHUNK
    ) -> None:
        if not 0 < chunk_size <= MAX_CHUNK:
            raise ValueError("chunk size out of range")
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.destination, self.size = destination, 0
        self._chunk, self._index, self._buffer = chunk_size, 0, bytearray()
        self._header = HEADER.pack(MAGIC, VERSION, chunk_size, os.urandom(8))
        self._aead, self._aad = AESGCM(dek), context.associated_data()
        self._tmp = temp_path_for(destination)
        self._out = self._tmp.open("xb")
        # Held while the writer lives, released by the kernel when its process dies (even by
        # SIGKILL): a start-up sweep removes only the temp files nobody holds (orphans).
        fcntl.flock(self._out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.chmod(self._tmp, 0o600)
        self._out.write(self._header)

    def write(self, piece: bytes) -> None:
        self._buffer += piece
        self.size += len(piece)
        offset = 0
        while len(self._buffer) - offset > self._chunk:  # hold one chunk back: the last?
            chunk = bytes(self._buffer[offset : offset + self._chunk])
            self._out.write(self._seal(chunk, last=False))
            offset += self._chunk
        del self._buffer[:offset]

    def commit(self) -> int:
        self._out.write(self._seal(bytes(self._buffer), last=True))
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        self._tmp.replace(self.destination)
        fsync_dir(self.destination.parent)
        return self.size

    def abort(self) -> None:
        try:
            self._out.close()  # flushes what is buffered: on a full disk that raises again
        except OSError:
            pass
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None or not self._out.closed:
            self.abort()

    def _seal(self, data: bytes, *, last: bool) -> bytes:
        sealed = _seal(self._aead, self._header, self._aad, self._index, data, last=last)
        self._index += 1
        return sealed


def encrypt_to_file(
    dek: bytes,
    chunks: Iterable[bytes],
    destination: Path,
    context: FileContext,
    chunk_size: int = DEFAULT_CHUNK,
) -> int:
    """Encrypt a stream of bytes into `destination` atomically; returns the plaintext size."""
    with EncryptingWriter(dek, destination, context, chunk_size) as writer:
        for piece in chunks:
            writer.write(piece)
        return writer.commit()


class DecryptingReader(io.RawIOBase):
    """A seekable, read-only file object over an encrypted file, decrypting one chunk at a
    time: lets PyAV probe and decode a recording without plaintext ever reaching the disk."""

    def __init__(self, dek: bytes, source: Path, context: FileContext) -> None:
        super().__init__()
        self._file = source.open("rb")
        try:
            header = self._file.read(HEADER.size)
            if len(header) != HEADER.size:
                raise DecryptionFailed("not an encrypted recording")
            magic, version, chunk_size, _ = HEADER.unpack(header)
            if magic != MAGIC or version != VERSION or not 0 < chunk_size <= MAX_CHUNK:
                raise DecryptionFailed("not an encrypted recording")
            sealed_size = source.stat().st_size - HEADER.size
            chunks = max(1, -(-sealed_size // (chunk_size + TAG)))
            last_sealed = sealed_size - (chunks - 1) * (chunk_size + TAG)
            if last_sealed < TAG:  # not even the final chunk's tag: cut short
                raise DecryptionFailed("the recording is truncated")
        except BaseException:
            self._file.close()
            raise
        self._header, self._chunk, self.chunk_count = header, chunk_size, chunks
        self._aead, self._aad = AESGCM(dek), context.associated_data()
        self._length = (chunks - 1) * chunk_size + last_sealed - TAG
        self._pos, self._cached = 0, (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Fill as much of `buffer` as the file holds from the current position."""
        view, filled = memoryview(buffer).cast("B"), 0
        while filled < len(view) and self._pos < self._length:
            index, within = divmod(self._pos, self._chunk)
            plain = self.chunk(index)[within:]
            count = min(len(view) - filled, len(plain))
            view[filled : filled + count] = plain[:count]
            filled += count
            self._pos += count
        return filled

    def close(self) -> None:
        self._file.close()
        super().close()

    def chunk(self, index: int) -> bytes:
        """Plaintext of chunk `index`, authenticated (the last one as the last)."""
        if self._cached[0] != index:
            self._file.seek(HEADER.size + index * (self._chunk + TAG))
            sealed = self._file.read(self._chunk + TAG)
            last = index == self.chunk_count - 1
            self._cached = (
                index,
                _open(self._aead, self._header, self._aad, index, sealed, last=last),
            )
        return self._cached[1]


def decrypt_file(dek: bytes, source: Path, context: FileContext) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk (constant memory). Raises DecryptionFailed on any
    tampering, truncation or wrong key/context, before yielding the damaged chunk."""
    with DecryptingReader(dek, source, context) as reader:
        for index in range(reader.chunk_count):
            yield reader.chunk(index)


def _nonce(header: bytes, index: int) -> bytes:
    return header[-8:] + struct.pack(">I", index)


def _chunk_aad(header: bytes, aad: bytes, index: int, last: bool) -> bytes:
    return header + aad + struct.pack(">I?", index, last)


def _seal(aead: AESGCM, header: bytes, aad: bytes, index: int, data: bytes, *, last: bool) -> bytes:
    if index >= 2**32 - 1:
        raise ValueError("file too large for one key stream")
    return aead.encrypt(_nonce(header, index), data, _chunk_aad(header, aad, index, last))


def _open(
    aead: AESGCM, header: bytes, aad: bytes, index: int, sealed: bytes, *, last: bool
) -> bytes:
    try:
        return aead.decrypt(_nonce(header, index), sealed, _chunk_aad(header, aad, index, last))
    except InvalidTag:
        raise DecryptionFailed("the recording does not match its key or context") from None
