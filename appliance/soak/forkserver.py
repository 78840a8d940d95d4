"""The fork server behind `soak.worker_harness.Harness`: `python -m appliance.soak.forkserver`.

Importing `appliance worker` with its stages takes seconds on two cores; a soak starts
hundreds of workers. This process imports it once, with the deterministic fake backends of
`tests/speech_fakes.py` swapped in, then forks one worker per request. It is its own module
because it runs as `__main__` in its own process and shares nothing with the driver but the
line protocol: a JSON order ({arguments, env, log}) on stdin, the new worker's pid on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from appliance.soak.worker_harness import fake_speech


def serve() -> None:
    """Import `appliance worker` with the deterministic fake backends (tests/speech_fakes.py)
    once, then fork one worker per line on stdin ({arguments, env, log}) and answer its pid.
    A forked worker is a real process of its own, killed and restarted like any other."""
    import threading

    # Warm too what the stages import on first use (the decoder: seconds on two cores). Cold,
    # a stage's first run outlasts the 2 s lease before it first reports progress, so its own
    # worker's sweep takes the job back: correct (the output is discarded), but an extra
    # attempt that would hide the ones the kills cause. Production leases are 120 s.
    import av  # noqa: F401
    import faster_whisper  # noqa: F401

    import appliance.pipeline.stages as stages
    import appliance.retrieval.embedder as embedder
    from appliance.cli import run
    from appliance.jobs import tasks  # noqa: F401 (warm: what `appliance worker` imports)

    speech = fake_speech()
    stages.pipeline = speech.pipeline
    embedder.embedder_for = speech.embedder

    def reap() -> None:
        while True:
            try:
                os.wait()
            except ChildProcessError:
                time.sleep(0.05)

    threading.Thread(target=reap, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the worker
            code: Any = 1
            try:
                log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                for name in [k for k in os.environ if k.startswith("APPLIANCE_")]:
                    del os.environ[name]
                os.environ.update(order["env"])
                sys.argv = ["appliance", "worker", *order["arguments"]]
                run()
                code = 0
            except SystemExit as exc:
                code = exc.code
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code if isinstance(code, int) else 1)
        print(pid, flush=True)


if __name__ == "__main__":
    serve()
