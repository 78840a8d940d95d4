"""Which `appliance worker` processes are alive: each writes a heartbeat row while it runs, so
`ingest --wait` knows whether to run stages itself and the console can list the workers; and
what a stopping worker hands back."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from appliance.jobs.models import Job, JobState, JobWorker
from appliance.jobs.service import now_utc


def heartbeat(session: Session, worker_id: str) -> None:
    row = session.get(JobWorker, worker_id) or JobWorker(id=worker_id)
    row.seen_at = now_utc()
    session.add(row)
    session.commit()


def forget_worker(session: Session, worker_id: str) -> None:
    row = session.get(JobWorker, worker_id)
    if row is not None:
        session.delete(row)
        session.commit()


def live_workers(session: Session, within_seconds: int) -> list[JobWorker]:
    since = now_utc() - timedelta(seconds=within_seconds)
    return list(session.exec(select(JobWorker).where(col(JobWorker.seen_at) >= since)))


def hand_back(session: Session, worker_id: str) -> int:
    """Put the jobs this worker is running back in the queue at once, the attempt not counted:
    a service being stopped (an upgrade, a reboot) is no fault of the stage, and waiting for
    the lease to run out would delay the recording by `lease_seconds`. The stage may still be
    computing in another thread; its lease is void now, so it can write nothing. Returns how
    many jobs went back."""
    moment = now_utc()
    result = session.execute(
        update(Job)
        .where(col(Job.worker) == worker_id[:128], col(Job.state) == JobState.running.value)
        .values(
            state=JobState.queued.value,
            attempts=col(Job.attempts) - 1,
            lease_token=None,
            lease_expires_at=None,
            run_after=moment,
            updated_at=moment,
            last_error="handed back by a stopping worker",
            progress=0,
        )
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
