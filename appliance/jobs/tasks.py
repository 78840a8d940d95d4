"""Huey on SQLite (a file in the data dir) wakes workers; it is never the record of what must
run. A wake-up lost with a killed worker costs nothing: every worker sweeps expired leases and
looks for runnable jobs on its own every `jobs.sweep_seconds`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from appliance.crypto.service import keystore_for
from appliance.db import Database, open_database
from appliance.jobs import runner, workers
from appliance.jobs import service as jobs
from appliance.settings import Settings

logger = logging.getLogger("appliance.jobs")

# How often a worker that runs only some stages looks for runnable jobs itself (seconds).
HANDOFF_SECONDS = 2.0


class JobQueue:
    """The wake-up channel between the web process, the CLI and the workers."""

    def __init__(self, settings: Settings, on_wake: Callable[[], None] | None = None) -> None:
        from huey import SqliteHuey  # lazy: the CLI's other commands never need it

        self.huey = SqliteHuey(
            name="appliance", filename=str(settings.queue_path), results=False, utc=True
        )
        handler = on_wake or (lambda: None)

        @self.huey.task(name="wake")  # type: ignore[untyped-decorator]
        def wake() -> None:
            handler()

        self._wake = wake

    def wake(self, delay_seconds: float = 0) -> None:
        """Ask a worker to look for runnable jobs. Never raises: the worker's own periodic
        look finds the jobs anyway, so a full disk or a locked queue file only delays them."""
        try:
            if delay_seconds > 0:
                self._wake.schedule(delay=delay_seconds)
            else:
                self._wake()
        except Exception as exc:
            logger.warning("could not wake the workers", extra={"error": type(exc).__name__})


def run_worker(
    settings: Settings, threads: int | None = None, only: frozenset[str] | None = None
) -> None:
    """`appliance worker`: the Huey consumer plus a housekeeping thread (heartbeat, lease
    sweep) and a thread that looks for runnable jobs on its own.

    `only`: the stages this worker runs (None: all). A wake-up goes to whichever worker reads
    it first, so a worker that runs some stages cannot count on being woken for them: it
    looks every `HANDOFF_SECONDS` (one indexed query), which bounds how long a recording
    waits between the CPU and the GPU worker. Concurrent jobs stay at `threads`.

    SIGTERM stops it at once: it leases nothing more and hands its running jobs back to the
    queue (`workers.hand_back`), so another worker, or this one restarted, runs them without
    waiting for the lease to expire."""
    from appliance.pipeline.stages import pipeline

    with open_database(settings) as database:
        store, stages, name = keystore_for(settings), pipeline(), runner.worker_name()
        if only is None or "embed" in only:  # only a worker that embeds loads the embedder
            _follow_embedding_model(database, settings)
        slots = threading.BoundedSemaphore(threads or settings.jobs.worker_threads)
        stop, stopping = threading.Event(), threading.Event()

        def drain(wait: bool = True) -> None:
            if not slots.acquire(blocking=wait):
                return  # every slot is busy draining already
            try:
                runner.drain(database, settings, store, name, stages, only=only, stopping=stopping)
            finally:
                slots.release()

        queue = JobQueue(settings, drain)
        look_every: float = settings.jobs.sweep_seconds
        if only is not None:
            look_every = min(look_every, HANDOFF_SECONDS)

        def housekeeping() -> None:
            while True:
                try:
                    with database.session() as session:
                        workers.heartbeat(session, name)
                        swept = jobs.sweep(session)
                    if swept:
                        logger.warning("re-queued jobs of lost workers", extra={"count": swept})
                except Exception as exc:  # the database may be restarting; try again later
                    logger.warning("housekeeping failed", extra={"error": type(exc).__name__})
                if stop.wait(settings.jobs.sweep_seconds):
                    return

        def look() -> None:
            while True:
                try:
                    drain(wait=False)
                except Exception as exc:  # as above: look again later
                    logger.warning("looking for jobs failed", extra={"error": type(exc).__name__})
                if stop.wait(look_every):
                    return

        helpers = [
            threading.Thread(target=housekeeping, name="housekeeping", daemon=True),
            threading.Thread(target=look, name="look", daemon=True),
        ]
        for helper in helpers:
            helper.start()
        consumer: Any = queue.huey.create_consumer(
            workers=threads or settings.jobs.worker_threads,
            worker_type="thread",
            periodic=False,
            max_delay=1.0,
        )
        stage_list = ",".join(sorted(only)) if only is not None else "all"
        logger.info("worker started", extra={"worker": name, "stages": stage_list})
        try:
            consumer.run()
        finally:
            stopping.set()
            stop.set()
            helpers[0].join(timeout=5)
            _say_goodbye(database, name)


def _say_goodbye(database: Database, name: str) -> None:
    """Hand back the jobs still running here and remove the heartbeat row; a failure only
    means the sweep hands the jobs on once their leases expire."""
    try:
        with database.session() as session:
            handed = workers.hand_back(session, name)
            workers.forget_worker(session, name)
        if handed:
            logger.warning("handed running jobs back to the queue", extra={"count": handed})
    except Exception as exc:
        logger.warning("could not deregister", extra={"error": type(exc).__name__})


def _follow_embedding_model(database: Database, settings: Settings) -> None:
    """A changed `[retrieval] embedder` starts re-embedding in the background (searches use
    the old vectors until the new ones are complete). A failure here must not stop the
    worker: the speech stages do not need it."""
    from appliance.retrieval import index
    from appliance.retrieval.embedder import embedder_for

    try:
        with database.session() as session:
            if index.sync(session, settings, embedder_for):
                logger.warning("embedding model changed: re-embedding every chunk")
    except Exception as exc:
        logger.warning("could not check the embedding model", extra={"error": type(exc).__name__})
