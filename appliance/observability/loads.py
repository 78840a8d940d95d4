"""How long each model took to load, in whichever process loaded it.

Models are loaded by the workers (speech, embeddings), by `appliance llm` (the chat model) and
by the web process (the embedder, for questions), each a separate process, while `/metrics` is
served by the web process alone. So a service process, once it knows its data dir, also keeps
the figures in `<data_dir>/metrics/model-loads.json` (one entry per model, the latest load
wins; written under a lock and replaced atomically), which the web process reads at scrape
time. Nothing heavy is imported here: backends call it around their own lazy imports.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from appliance.settings import Settings

logger = logging.getLogger("appliance.models")

FILE_NAME = "model-loads.json"

_lock = threading.Lock()
_seconds: dict[str, float] = {}
_shared: Path | None = None


def loads_dir(settings: Settings) -> Path:
    return settings.data_dir / "metrics"


def share_loads(settings: Settings) -> None:
    """Called once by each service process (web, worker, llm) at start."""
    global _shared
    _shared = loads_dir(settings)


def record_model_load(model: str, seconds: float) -> None:
    """Remember (and log) a finished load; a reload replaces the figure."""
    with _lock:
        _seconds[model] = seconds
        shared = _shared
    logger.info("model loaded", extra={"model": model, "seconds": round(seconds, 3)})
    if shared is not None:
        try:
            _write_shared(shared, model, seconds)
        except (OSError, ValueError) as exc:  # metrics must never break a model load
            logger.warning("could not share a model load time", extra={"error": type(exc).__name__})


def _write_shared(directory: Path, model: str, seconds: float) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(directory / f"{FILE_NAME}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        found = _read(directory / FILE_NAME)
        found[model] = {"seconds": seconds, "at": datetime.now(UTC).isoformat()}
        temporary = directory / f".{FILE_NAME}.{os.getpid()}"
        temporary.write_text(json.dumps(found, indent=1))
        temporary.chmod(0o600)
        temporary.replace(directory / FILE_NAME)
    finally:
        os.close(fd)


def _read(path: Path) -> dict[str, dict[str, object]]:
    try:
        found = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


@contextmanager
def timed_model_load(model: str) -> Iterator[None]:
    """Times the block; records it only when the load succeeded."""
    started = time.perf_counter()
    yield
    record_model_load(model, time.perf_counter() - started)


def model_load_seconds(directory: Path | None = None) -> dict[str, float]:
    """Every process's latest figures from `directory`, then this process's own on top."""
    merged: dict[str, float] = {}
    if directory is not None:
        for model, entry in _read(directory / FILE_NAME).items():
            seconds = entry.get("seconds") if isinstance(entry, dict) else None
            if isinstance(seconds, int | float):
                merged[str(model)] = float(seconds)
    with _lock:
        merged.update(_seconds)
    return merged
