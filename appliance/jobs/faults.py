"""Fault-injection points for the crash tests (issue: reliability).

A stage passes named points (`claimed`, `computed`: the work is done, nothing committed yet;
`saved`: the output is written in the open transaction, not committed; `committed`). When the
environment names one, the worker stops there and says so on stderr, so a test can `kill -9`
it at exactly that moment instead of racing a timer. Unset, this is a few dict lookups.

Two more modes for `appliance soak worker-faults`: `KILL_AFTER_ENV` ("stage:seconds") makes
the process SIGKILL itself that long after claiming the stage (a random point inside the run,
the save or the commit, measured from the claim rather than raced from outside), and
`HOLD_ENV` ("stage:point:seconds") holds there that long and then goes on (time for a test
to stop PostgreSQL under a stage that is about to commit).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PAUSE_ENV = "APPLIANCE_TEST_PAUSE_AT"
KILL_AFTER_ENV = "APPLIANCE_TEST_KILL_AFTER"
HOLD_ENV = "APPLIANCE_TEST_HOLD_AT"


def point(stage: str, name: str) -> None:
    if os.environ.get(PAUSE_ENV) == f"{stage}:{name}":
        print(f"paused at {stage}:{name}", file=sys.stderr, flush=True)
        while True:  # until killed
            time.sleep(3600)
    kill_after = os.environ.get(KILL_AFTER_ENV)
    if kill_after and name == "claimed" and kill_after.rpartition(":")[0] == stage:
        seconds = float(kill_after.rpartition(":")[2])
        print(f"dying {seconds:.3f} s into {stage}", file=sys.stderr, flush=True)
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    hold = os.environ.get(HOLD_ENV)
    if hold and hold.rpartition(":")[0] == f"{stage}:{name}":
        print(f"holding at {stage}:{name}", file=sys.stderr, flush=True)
        time.sleep(float(hold.rpartition(":")[2]))
        print(f"going on from {stage}:{name}", file=sys.stderr, flush=True)
