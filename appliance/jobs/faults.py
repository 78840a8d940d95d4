"""Fault-injection points for the crash tests (issue: reliability).

A stage passes named points (`claimed`, `computed`: the work is done, nothing committed yet).
When the environment names one, the worker stops there and says so on stderr, so a test can
`kill -9` it at exactly that moment instead of racing a timer. Unset, this is one dict lookup.
"""

from __future__ import annotations

import os
import sys
import time

PAUSE_ENV = "APPLIANCE_TEST_PAUSE_AT"


def point(stage: str, name: str) -> None:
    if os.environ.get(PAUSE_ENV) == f"{stage}:{name}":
        print(f"paused at {stage}:{name}", file=sys.stderr, flush=True)
        while True:  # until killed
            time.sleep(3600)
