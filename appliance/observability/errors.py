"""Unhandled errors, recorded on the box for the console's Errors page; no outside tracker.

Where: an append-only JSON-lines file, `<data_dir>/errors/errors.jsonl` (rotated once past
1 MiB to `errors.jsonl.1`, so at most about 2 MiB are kept). A file rather than a table because
the web process, every worker and `appliance llm` must all be able to record, and the errors
worth recording most are the ones where the database is what broke; an append under a lock
file costs microseconds in the event loop, where an INSERT would block it.

What: the time, where it happened (the route template or the job stage, never a concrete path
or query string), the exception's type and the types of its causes, and each frame's file, line,
function and source line. Never the exception's message, request bodies, headers or local
variables: any of these can quote a patient.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from appliance.settings import Settings

logger = logging.getLogger("appliance.errors")

FILE_NAME = "errors.jsonl"
MAX_BYTES = 1024 * 1024
MAX_FRAMES = 40
MAX_CAUSES = 4
Source = Literal["request", "job"]


@dataclass(frozen=True)
class Section:
    """One exception of a chain: its type and frames (outermost call first)."""

    exc_type: str
    frames: tuple[str, ...]


@dataclass(frozen=True)
class RecordedError:
    id: str
    at: datetime
    source: Source
    where: str  # route template or job stage
    exc_type: str
    sections: tuple[Section, ...]  # root cause first, as Python prints them
    method: str | None = None
    request_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "source": self.source,
            "where": self.where,
            "exc_type": self.exc_type,
            "sections": [{"exc_type": s.exc_type, "frames": list(s.frames)} for s in self.sections],
            "method": self.method,
            "request_id": self.request_id,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RecordedError:
        return cls(
            id=str(raw["id"]),
            at=datetime.fromisoformat(raw["at"]),
            source=raw["source"],
            where=str(raw["where"]),
            exc_type=str(raw["exc_type"]),
            sections=tuple(
                Section(str(s["exc_type"]), tuple(str(f) for f in s["frames"]))
                for s in raw.get("sections", ())
            ),
            method=raw.get("method"),
            request_id=raw.get("request_id"),
        )


def errors_dir(settings: Settings) -> Path:
    return settings.data_dir / "errors"


def type_name(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _short(filename: str) -> str:
    """Library paths from `site-packages/` on, so a trace reads the same on every box."""
    marker = f"{os.sep}site-packages{os.sep}"
    if marker in filename:
        return filename.split(marker, 1)[1]
    for prefix in sys.path:
        if prefix and filename.startswith(prefix.rstrip(os.sep) + os.sep):
            return filename[len(prefix.rstrip(os.sep)) + 1 :]
    return filename


def sections_of(exc: BaseException) -> tuple[Section, ...]:
    """The exception and its causes as type + frames. Frames carry code, not data: the file,
    line, function and the source line as written (`traceback` reads it from the file)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) <= MAX_CAUSES:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    sections = []
    for item in reversed(chain):
        frames = traceback.extract_tb(item.__traceback__)[-MAX_FRAMES:]
        lines = tuple(
            f"{_short(f.filename)}:{f.lineno} in {f.name}" + (f": {f.line}" if f.line else "")
            for f in frames
        )
        sections.append(Section(type_name(item), lines))
    return tuple(sections)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise rotation and appends across processes (web, workers, llm)."""
    fd = os.open(directory / "errors.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def record_error(
    directory: Path,
    source: Source,
    where: str,
    exc: BaseException,
    *,
    method: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> RecordedError | None:
    """Append one error. Never raises: failing to record must not hide the original error."""
    entry = RecordedError(
        id=uuid.uuid4().hex[:16],
        at=now or datetime.now(UTC),
        source=source,
        where=where[:200],
        exc_type=type_name(exc),
        sections=sections_of(exc),
        method=method,
        request_id=request_id,
    )
    line = (json.dumps(entry.as_dict(), separators=(",", ":")) + "\n").encode()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / FILE_NAME
        with _locked(directory):
            if path.exists() and path.stat().st_size + len(line) > MAX_BYTES:
                path.replace(directory / f"{FILE_NAME}.1")
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
    except OSError as exc_write:
        logger.warning("could not record an error", extra={"error": type(exc_write).__name__})
        return None
    return entry


def record_request_error(request: Any, exc: BaseException) -> RecordedError | None:
    """For the web error handler: where = the matched route's template, never the path."""
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        return None
    scope = request.scope
    from appliance.logs import request_id_var

    return record_error(
        errors_dir(settings),
        "request",
        scope.get("path_template") or "<unmatched>",
        exc,
        method=scope.get("method"),
        request_id=request_id_var.get(),
    )


def record_job_error(settings: Settings, stage: str, exc: BaseException) -> RecordedError | None:
    return record_error(errors_dir(settings), "job", stage, exc)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []


def read_errors(
    directory: Path, *, offset: int = 0, limit: int = 50
) -> tuple[list[RecordedError], int]:
    """Newest first: a page of errors and how many are kept in all. A torn or foreign line
    (a crash mid-write) is skipped, not fatal."""
    lines = _lines(directory / f"{FILE_NAME}.1") + _lines(directory / FILE_NAME)
    found: list[RecordedError] = []
    for line in reversed(lines):
        try:
            found.append(RecordedError.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return found[offset : offset + limit], len(found)
