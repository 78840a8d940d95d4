"""Running one leased job: the part shared by `appliance worker` and `appliance ingest --wait`.

A stage computes outside any transaction (minutes of decoding or inference, reporting progress,
which renews the lease), then writes its output and the job's success in one transaction that
first checks the lease and the consent again. Errors never carry PHI into the job row: only the
exception class, or the appliance's own message for its own errors.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import keystore_for, patient_cipher
from appliance.crypto.streams import DecryptingReader, FileContext
from appliance.db import Database
from appliance.errors import DomainError
from appliance.jobs import faults, workers
from appliance.jobs import service as jobs
from appliance.jobs.models import Job
from appliance.jobs.service import ConsentWithdrawn, Lease, LeaseLost
from appliance.observability.errors import record_job_error
from appliance.recordings.models import Recording
from appliance.settings import Settings

logger = logging.getLogger("appliance.jobs")


class PermanentError(DomainError):
    """A failure that retrying cannot fix (the input itself is unusable): the job goes dead."""


@dataclass(frozen=True)
class StageContext:
    settings: Settings
    store: KeyStore
    lease: Lease
    recording: Recording
    report: Callable[[int], None]  # progress 0-100; renews the lease; raises LeaseLost
    database: Database  # for reading earlier stages' outputs; `run` never writes

    def read(self, fn: Callable[[Any], Any]) -> Any:
        """Run `fn(session)` in a short read-only session (earlier outputs, enrolments)."""
        with self.database.session() as session:
            return fn(session)

    def open_recording(self) -> BinaryIO:
        """The decrypted recording as a seekable file (decrypted chunk by chunk, in memory)."""
        cipher = patient_cipher(self.store, self.recording.patient_id)
        path = recording_path(self.settings, self.recording)
        context = FileContext("recording", self.recording.id, self.recording.patient_id)
        return DecryptingReader(cipher.dek, path, context)  # type: ignore[return-value]


def recording_path(settings: Settings, recording: Recording) -> Any:
    return settings.files_dir / str(recording.patient_id) / "recordings" / f"{recording.id}.rec"


class Stage(Protocol):
    """One step of the pipeline. `run` may take minutes and must not write to the database;
    `save` writes the output, idempotently (keyed by recording and `version`)."""

    name: str
    purpose: Purpose
    after: str | None
    version: str

    def run(self, context: StageContext) -> Any: ...

    def save(self, session: Any, context: StageContext, output: Any) -> None: ...


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def run_leased(
    database: Database,
    settings: Settings,
    store: KeyStore,
    lease: Lease,
    stages: dict[str, Stage],
) -> str:
    """Run the leased job to an end state; returns that state."""
    stage = stages.get(lease.stage)
    with database.session() as session:
        if stage is None:
            jobs.fail(
                session, lease, f"no stage named {lease.stage}", permanent=True, backoff_seconds=0
            )
            return "dead"
        recording = session.get(Recording, lease.recording_id)
    lock = threading.Lock()

    def report(percent: int) -> None:
        with lock, database.session() as s:
            jobs.renew(s, lease, percent, settings.jobs.lease_seconds)

    try:
        if recording is None:
            raise LeaseLost(str(lease.job_id))  # erased with its patient
        context = StageContext(settings, store, lease, recording, report, database)
        faults.point(lease.stage, "claimed")
        output = stage.run(context)
        faults.point(lease.stage, "computed")
        with database.session() as session:
            jobs.complete(session, lease, stage.version)
            stage.save(session, context, output)
            faults.point(lease.stage, "saved")
            session.commit()
        faults.point(lease.stage, "committed")
        logger.info("job succeeded", extra=_log(lease))
        return "succeeded"
    except LeaseLost:
        logger.warning("job lease lost; output discarded", extra=_log(lease))
        return "lost"
    except ConsentWithdrawn:
        with database.session() as session:
            _quietly(jobs.cancel, session, lease, "consent withdrawn")
        logger.info("job cancelled: consent withdrawn", extra=_log(lease))
        return "cancelled"
    except Exception as exc:
        own = isinstance(exc, DomainError)  # our messages carry no PHI; others might
        if not own:  # a bug or an outage, not a refusal: the console's Errors page shows it
            record_job_error(settings, lease.stage, exc)
        error = f"{type(exc).__name__}: {exc}" if own else type(exc).__name__
        with database.session() as session:
            state = _quietly(
                jobs.fail,
                session,
                lease,
                error,
                permanent=isinstance(exc, PermanentError),
                backoff_seconds=settings.jobs.backoff_seconds,
            )
        logger.warning("job failed", extra={**_log(lease), "error": type(exc).__name__})
        return str(state or "lost")


def _quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except LeaseLost:
        return None


def _log(lease: Lease) -> dict[str, Any]:
    return {"job_id": str(lease.job_id), "stage": lease.stage, "attempt": lease.attempt}


def drain(
    database: Database,
    settings: Settings,
    store: KeyStore,
    worker: str,
    stages: dict[str, Stage],
    *,
    recording_id: uuid.UUID | None = None,
    skip: Collection[str] = (),
    only: Collection[str] | None = None,
    stopping: threading.Event | None = None,
) -> int:
    """Run runnable jobs until none is left (or `stopping` is set: a stopping worker must not
    lease another job); returns how many ran. `only`: the stages this worker runs."""
    ran = 0
    while stopping is None or not stopping.is_set():
        with database.session() as session:
            lease = jobs.claim(
                session,
                worker,
                settings.jobs.lease_seconds,
                recording_id=recording_id,
                skip=skip,
                only=only,
            )
        if lease is None:
            return ran
        run_leased(database, settings, store, lease, stages)
        ran += 1
    return ran


def wait_for_recording(
    settings: Settings, database: Database, recording_id: uuid.UUID, poll_seconds: float = 0.5
) -> list[Job]:
    """Until every stage of the recording but the background ones (the report) has finished
    or can go no further. A live worker service does the work; when there is none, this
    process runs the stages itself. Returns every job, background ones included."""
    from appliance.pipeline.stages import BACKGROUND, pipeline

    store, stages, name = keystore_for(settings), pipeline(), worker_name()
    alive_within = 3 * settings.jobs.sweep_seconds
    while True:
        with database.session() as session:
            every = jobs.for_recording(session, recording_id)
            current = [job for job in every if job.stage not in BACKGROUND]
            alive = workers.live_workers(session, alive_within)
            if not jobs.unfinished(current):
                return every
            if not alive:
                jobs.sweep(session)
        if not alive and drain(
            database, settings, store, name, stages, recording_id=recording_id, skip=BACKGROUND
        ):
            continue
        time.sleep(poll_seconds)
