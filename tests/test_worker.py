"""Workers as real processes: `appliance worker`, `appliance ingest --wait`, and a worker
killed with SIGKILL in the middle of a stage."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.jobs import workers
from appliance.jobs.faults import PAUSE_ENV
from appliance.jobs.models import Job
from appliance.pipeline.models import RecordingProbe
from appliance.recordings.models import TherapySession
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import add_recording, consented_session, run_cli
from tests.worker_processes import Spawn, wait_until, worker_processes

pytestmark = pytest.mark.slow


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
        # A killed worker's lease runs out in two seconds; workers look every second.
        "APPLIANCE_JOBS__LEASE_SECONDS": "2",
        "APPLIANCE_JOBS__SWEEP_SECONDS": "1",
    }


@pytest.fixture
def bobs_session(session: Session, alice: UserPublic, bob: PatientPublic) -> TherapySession:
    return consented_session(session, bob.id, alice.id)  # type: ignore[no-any-return]


@pytest.fixture
def spawn_worker(env: dict[str, str], tmp_path: Path) -> Iterator[Spawn]:
    with worker_processes(env, tmp_path) as spawn:
        yield spawn


def probe_job(session: Session) -> Job:
    session.expire_all()
    return session.exec(select(Job).where(Job.stage == "probe")).one()


def test_ingest_wait_runs_the_stages_itself_when_no_worker_is_running(
    env: dict[str, str], bobs_session: TherapySession, tmp_path: Path, session: Session
) -> None:
    audio = tmp_path / "bob.wav"
    audio.write_bytes(make_audio("wav"))
    result = run_cli("ingest", "--session", str(bobs_session.id), str(audio), "--wait", env=env)
    assert result.returncode == 0, result.stderr
    assert "probe: succeeded" in result.stdout
    # bob consented to recording only: the speech stages are cancelled, which is no failure.
    for stage in ("transcribe", "diarize", "attribute"):
        assert f"{stage}: cancelled consent for transcription is not given" in result.stdout
    assert probe_job(session).worker is not None
    assert len(session.exec(select(RecordingProbe)).all()) == 1


def test_a_worker_process_runs_the_jobs_of_an_upload(
    spawn_worker: Spawn,
    env: dict[str, str],
    bobs_session: TherapySession,
    tmp_path: Path,
    session: Session,
) -> None:
    worker = spawn_worker()
    wait_until(lambda: workers.live_workers(session, 60))
    audio = tmp_path / "bob.wav"
    audio.write_bytes(make_audio("mp3"))
    result = run_cli("ingest", "--session", str(bobs_session.id), str(audio), "--wait", env=env)
    assert result.returncode == 0, result.stderr
    job = probe_job(session)
    assert job.state == "succeeded"
    assert f":{worker.pid}:" in (job.worker or "")  # the service ran it, not the CLI

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert workers.live_workers(session, 60) == []  # it said goodbye


def test_a_worker_killed_in_the_middle_of_a_stage_is_replaced_and_writes_once(
    spawn_worker: Spawn,
    bobs_session: TherapySession,
    settings: Settings,
    store: KeyStore,
    session: Session,
) -> None:
    doomed = spawn_worker(**{PAUSE_ENV: "probe:computed"})
    add_recording(session, settings, store, bobs_session, make_audio("ogg"))
    log: Path = doomed.log_path  # type: ignore[attr-defined]
    wait_until(lambda: "paused at probe:computed" in log.read_text())
    # The work is done and nothing is committed: the worst moment to die.
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    assert probe_job(session).state == "running"
    assert session.exec(select(RecordingProbe)).all() == []

    spawn_worker()
    job = wait_until(lambda: (j := probe_job(session)).state == "succeeded" and j)
    assert job.attempts == 2
    assert "stopped renewing its lease" in (job.last_error or "")
    assert len(session.exec(select(RecordingProbe)).all()) == 1
