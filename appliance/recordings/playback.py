"""Playing a session's recording in the console: the encrypted file, decrypted on the fly,
served whole or by byte range so a browser's `<audio>` can seek.

Why byte ranges: Chromium only lets a listener seek in a media file whose server answers
`Range` requests with 206 partial content; without them the player starts over. The bytes are
decrypted chunk by chunk in memory (`DecryptingReader`); nothing in clear reaches the disk.

Auditing: a player fetches one recording in many range requests (one per seek, and more while
buffering). One audit row per request would bury the log, so a play is audited once, at the
request that starts it: no `Range` header, or a range that starts at byte 0 (what a browser
sends when it loads the media). Later ranges of the same file are not audited. A denied request
(another therapist's patient, a recording of another session) is always audited.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from sqlmodel import Session, col, select

from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import DecryptingReader, FileContext
from appliance.errors import NotFound
from appliance.jobs.runner import recording_path
from appliance.recordings.models import Recording, TherapySession
from appliance.settings import Settings

PIECE = 256 * 1024  # bytes sent per write: small enough to start playing at once
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
# PyAV's container names (the first of its comma-separated list) -> what browsers expect.
MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "matroska": "audio/webm",
    "webm": "audio/webm",
    "mov": "audio/mp4",
    "mp4": "audio/mp4",
    "flac": "audio/flac",
    "aac": "audio/aac",
}


class RangeNotSatisfiable(Exception):
    """A range that starts past the end of the file (answered 416 with the real size)."""


@dataclass(frozen=True)
class Part:
    """One recording of a session and where it starts on the session's timeline (a session
    recorded in two files continues where the first ended, as its transcript does)."""

    recording: Recording
    offset: float

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.recording.container, "application/octet-stream")


def parts(session: Session, row: TherapySession) -> list[Part]:
    """The session's recordings in transcript order (oldest first), with their offsets."""
    recordings = session.exec(
        select(Recording)
        .where(Recording.session_id == row.id)
        .order_by(col(Recording.created_at), col(Recording.id))
    ).all()
    found, offset = [], 0.0
    for recording in recordings:
        found.append(Part(recording, offset))
        offset += recording.duration_seconds
    return found


def recording_of(session: Session, row: TherapySession, recording_id: uuid.UUID) -> Recording:
    """The recording if it belongs to this session (else 404, as for one that does not exist)."""
    found = session.get(Recording, recording_id)
    if found is None or found.session_id != row.id:
        raise NotFound("no such recording")
    return found


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) that `header` asks for, or None for the whole file
    (no header, a malformed one, or several ranges: RFC 9110 lets a server ignore those)."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # "bytes=-500": the last 500 bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(f"bytes */{size}")
    return start, end


def starts_a_play(byte_range: tuple[int, int] | None) -> bool:
    """Whether this request is the one a play is audited at (see the module's docstring)."""
    return byte_range is None or byte_range[0] == 0


def plain_bytes(
    settings: Settings, store: KeyStore, recording: Recording, start: int, end: int
) -> Iterator[bytes]:
    """Bytes `start`..`end` (inclusive) of the recording as uploaded, decrypted as they are
    sent. The file is opened when the first piece is asked for and closed after the last."""
    cipher = patient_cipher(store, recording.patient_id)
    context = FileContext("recording", recording.id, recording.patient_id)
    with DecryptingReader(cipher.dek, recording_path(settings, recording), context) as reader:
        reader.seek(start)
        left = end - start + 1
        while left > 0:
            piece = reader.read(min(PIECE, left))
            if not piece:
                return
            left -= len(piece)
            yield piece
