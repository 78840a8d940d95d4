"""Real `appliance worker` processes for tests, each logging to its own file, stopped with
SIGTERM (as systemd stops them) when the test ends, and a poll for what they should cause."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Spawn = Callable[..., subprocess.Popen[str]]


@contextmanager
def worker_processes(env: dict[str, str], logs: Path) -> Iterator[Spawn]:
    """`spawn(*arguments, **extra_env)` starts `appliance worker *arguments` with the caller's
    APPLIANCE_* variables (`env`, then `extra_env`) and none inherited from this process; its
    log is at `process.log_path`."""
    started: list[subprocess.Popen[str]] = []

    def spawn(*arguments: str, **extra_env: str) -> subprocess.Popen[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        full.update(env, **extra_env)
        log = (logs / f"worker-{len(started)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "worker", *arguments],
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        process.log_path = Path(log.name)  # type: ignore[attr-defined]
        started.append(process)
        return process

    try:
        yield spawn
    finally:
        for process in started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


def wait_until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """`check()`'s first truthy result, polled every 0.2 s; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s")
