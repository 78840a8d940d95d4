"""Atomic, private file writes: what every key file and encrypted recording is written with."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private_file(path: Path, payload: bytes, *, replace: bool) -> None:
    """Temp file (0600), fsync, then rename over `path` (or hard-link when it must not replace,
    so an existing key is never silently overwritten), then fsync the directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            tmp.replace(path)
        else:
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
