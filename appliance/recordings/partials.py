"""Uploads that cannot finish: a full disk (507) and the partial files a killed process leaves.

An upload is written to a hidden temp file beside its final name (`.{id}.rec.{hex}.tmp`,
appliance/crypto/streams.py) and renamed only once it is whole, so a crash never leaves a
partial file under a real name, and no row exists before the rename. What a SIGKILL can leave
is the temp file itself: the writer holds an exclusive `flock` on it, which the kernel drops when
the process dies, so `sweep_partial_uploads` (run when the web app starts) removes exactly the
temp files nobody is writing, never the one a live `appliance ingest` holds.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import shutil
from pathlib import Path

from appliance.errors import DomainError
from appliance.settings import Settings

logger = logging.getLogger("appliance.recordings")

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class InsufficientStorage(DomainError):
    """The disk holding recordings is full, or below the configured free-space reserve."""

    status_code = 507
    title = "Insufficient Storage"


def disk_full(exc: BaseException) -> bool:
    """Whether an exception is the disk (or a quota) running out of space."""
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def storage_error() -> InsufficientStorage:
    return InsufficientStorage(
        "the recordings disk is full; nothing was stored. Free space, then upload again."
    )


def require_space(settings: Settings, incoming_bytes: int = 0) -> None:
    """Refuse an upload early (507) when the files disk lacks room for it plus the reserve
    (`recordings.min_free_mb`): better than filling the disk the database also lives on."""
    files = settings.files_dir
    files.mkdir(mode=0o700, parents=True, exist_ok=True)
    reserve = settings.recordings.min_free_mb * 1024 * 1024
    if shutil.disk_usage(files).free < reserve + max(0, incoming_bytes):
        raise storage_error()


def partial_uploads(files_dir: Path) -> list[Path]:
    """The hidden temp files under each patient's recordings folder (live or orphaned)."""
    return sorted(files_dir.glob("*/recordings/.*.tmp"))


def sweep_partial_uploads(files_dir: Path) -> int:
    """Remove the temp files of uploads whose writer is gone; returns how many."""
    removed = 0
    for path in partial_uploads(files_dir):
        try:
            with path.open("rb") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live upload (another process) still writes it
                path.unlink(missing_ok=True)
                removed += 1
        except FileNotFoundError:
            continue  # finished or aborted meanwhile
    if removed:
        logger.warning("removed partial uploads left by a stopped process", extra={"n": removed})
    return removed
