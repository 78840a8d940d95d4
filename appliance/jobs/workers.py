"""Which `appliance worker` processes are alive: each writes a heartbeat row while it runs, so
`ingest --wait` knows whether to run stages itself and the console can list the workers."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from appliance.jobs.models import JobWorker
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
