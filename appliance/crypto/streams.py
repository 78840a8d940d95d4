"""Chunked AES-256-GCM for recordings: constant memory for any size, atomic on disk.

Format: a 20-byte header (magic, version, chunk size, random 8-byte nonce prefix), then chunks
of up to `chunk_size` plaintext bytes, each sealed with its own tag. A chunk's nonce is the
prefix plus its index; its associated data is the header, the file's context, its index and
whether it is the last chunk, so chunks cannot be reordered, dropped, swapped between files
or truncated away without the decryption failing.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

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


def encrypt_to_file(
    dek: bytes,
    chunks: Iterable[bytes],
    destination: Path,
    context: FileContext,
    chunk_size: int = DEFAULT_CHUNK,
) -> int:
    """Encrypt a stream of bytes into `destination`; returns the plaintext size.

    Written to a temp file in the same directory, fsynced, then renamed: readers see the whole
    file or none of it, and a failure (or a crash) leaves no partial file under the real name.
    """
    if not 0 < chunk_size <= MAX_CHUNK:
        raise ValueError("chunk size out of range")
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    header = HEADER.pack(MAGIC, VERSION, chunk_size, os.urandom(8))
    aead, aad = AESGCM(dek), context.associated_data()
    tmp = temp_path_for(destination)
    total = 0
    try:
        with tmp.open("xb") as out:
            os.chmod(tmp, 0o600)
            out.write(header)
            index = 0
            buffer = bytearray()
            for piece in chunks:
                buffer += piece
                offset = 0
                while len(buffer) - offset > chunk_size:  # hold one chunk back: the last?
                    chunk = bytes(buffer[offset : offset + chunk_size])
                    out.write(_seal(aead, header, aad, index, chunk, last=False))
                    offset += chunk_size
                    index += 1
                del buffer[:offset]
                total += offset
            out.write(_seal(aead, header, aad, index, bytes(buffer), last=True))
            total += len(buffer)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(destination)
        fsync_dir(destination.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return total


def decrypt_file(dek: bytes, source: Path, context: FileContext) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk (constant memory). Raises DecryptionFailed on any
    tampering, truncation or wrong key/context, before yielding the damaged chunk."""
    aead, aad = AESGCM(dek), context.associated_data()
    size = source.stat().st_size
    with source.open("rb") as handle:
        header = handle.read(HEADER.size)
        if len(header) != HEADER.size:
            raise DecryptionFailed("not an encrypted recording")
        magic, version, chunk_size, _ = HEADER.unpack(header)
        if magic != MAGIC or version != VERSION or not 0 < chunk_size <= MAX_CHUNK:
            raise DecryptionFailed("not an encrypted recording")
        index = 0
        while True:
            sealed = handle.read(chunk_size + TAG)
            last = handle.tell() >= size
            if len(sealed) < TAG:
                raise DecryptionFailed("the recording is truncated")
            yield _open(aead, header, aad, index, sealed, last=last)
            if last:
                return
            index += 1


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
