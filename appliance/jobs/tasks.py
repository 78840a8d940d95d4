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


def run_worker(settings: Settings, threads: int | None = None) -> None:
    """`appliance worker`: the Huey consumer plus a housekeeping thread (heartbeat, lease
    sweep, a periodic look for runnable jobs). SIGTERM stops it at once; a job it was running
    is re-run by the next sweep after its lease expires."""
    from appliance.pipeline.stages import pipeline

    with open_database(settings) as database:
        store, stages, name = keystore_for(settings), pipeline(), runner.worker_name()
        _follow_embedding_model(database, settings)

        def drain() -> None:
            runner.drain(database, settings, store, name, stages)

        queue = JobQueue(settings, drain)
        stop = threading.Event()

        def housekeeping() -> None:
            while True:
                try:
                    with database.session() as session:
                        workers.heartbeat(session, name)
                        swept = jobs.sweep(session)
                    if swept:
                        logger.warning("re-queued jobs of lost workers", extra={"count": swept})
                    queue.wake()
                except Exception as exc:  # the database may be restarting; try again later
                    logger.warning("housekeeping failed", extra={"error": type(exc).__name__})
                if stop.wait(settings.jobs.sweep_seconds):
                    return

        keeper = threading.Thread(target=housekeeping, name="housekeeping", daemon=True)
        keeper.start()
        consumer: Any = queue.huey.create_consumer(
            workers=threads or settings.jobs.worker_threads,
            worker_type="thread",
            periodic=False,
            max_delay=1.0,
        )
        logger.info("worker started", extra={"worker": name})
        try:
            consumer.run()
        finally:
            stop.set()
            keeper.join(timeout=5)
            try:
                with database.session() as session:
                    workers.forget_worker(session, name)
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
