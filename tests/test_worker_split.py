"""Workers that run some stages only (`appliance worker --only/--skip`), as the GPU and CPU
units start them, against the real database: each leases its own stages and nothing else,
hands a recording over to the other, and hands its running job back when stopped."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from appliance.cli.jobs import stages_to_run
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs import runner, workers
from appliance.jobs import service as jobs
from appliance.jobs.faults import PAUSE_ENV
from appliance.jobs.models import Job
from appliance.jobs.service import LeaseLost
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import add_recording, consented_session
from tests.speech_fakes import FakeSpeech
from tests.test_systemd import exec_start_arguments, parse_with_the_real_cli
from tests.worker_processes import Spawn, wait_until, worker_processes

GPU_UNIT, CPU_UNIT = "appliance-worker-gpu.service", "appliance-worker-cpu.service"


def unit_arguments(unit: str) -> list[str]:
    """The worker options of the unit's ExecStart, e.g. ["--only", "transcribe,..."]."""
    arguments = exec_start_arguments(unit)
    assert arguments[0] == "worker"
    return arguments[1:]


def unit_stages(unit: str) -> frozenset[str]:
    params = parse_with_the_real_cli(exec_start_arguments(unit)).params
    chosen = stages_to_run(params["only"], params["skip"])
    assert chosen is not None
    return chosen


def job_rows(session: Session, recording_id: uuid.UUID) -> dict[str, Job]:
    session.expire_all()
    return {job.stage: job for job in jobs.for_recording(session, recording_id)}


def test_the_gpu_and_cpu_workers_each_run_only_their_own_stages_of_a_recording(
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, alice.id, *Purpose)
    recording = add_recording(session, settings, store, row, make_audio("wav"))
    stages = FakeSpeech().pipeline()
    gpu, cpu = unit_stages(GPU_UNIT), unit_stages(CPU_UNIT)
    turns = []
    while True:  # the two workers take turns until neither finds anything to lease
        ran_gpu = runner.drain(database, settings, store, "gpu-worker", stages, only=gpu)
        ran_cpu = runner.drain(database, settings, store, "cpu-worker", stages, only=cpu)
        if not ran_gpu + ran_cpu:
            break
        turns.append((ran_gpu, ran_cpu))
    rows = job_rows(session, recording.recording_id)
    assert {stage: job.state for stage, job in rows.items()} == dict.fromkeys(rows, "succeeded")
    for stage, job in rows.items():
        assert job.worker == ("gpu-worker" if stage in gpu else "cpu-worker"), stage
    # probe (cpu) -> transcribe, diarize, attribute (gpu) -> chunk, embed (cpu) | report (gpu)
    assert turns == [(0, 1), (4, 2)]


def test_a_worker_neither_leases_nor_cancels_a_stage_it_does_not_run(
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    # bob consented to recording only: whoever leases `transcribe` must cancel it.
    row = consented_session(session, bob.id, alice.id)
    recording = add_recording(session, settings, store, row, make_audio("wav"))
    stages = FakeSpeech().pipeline()
    assert runner.drain(database, settings, store, "probe-only", stages, only={"probe"}) == 1
    rows = job_rows(session, recording.recording_id)
    assert rows["probe"].state == "succeeded"
    assert (rows["transcribe"].state, rows["transcribe"].last_error) == ("queued", None)
    assert jobs.claim(session, "nothing", 60, only=frozenset()) is None

    assert runner.drain(database, settings, store, "speech", stages, only={"transcribe"}) == 0
    rows = job_rows(session, recording.recording_id)
    assert rows["transcribe"].state == "cancelled"  # the speech worker did lease it


def test_a_stopping_worker_hands_its_job_back_without_spending_an_attempt(
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, alice.id)
    recording = add_recording(session, settings, store, row, make_audio("wav"))
    lease = jobs.claim(session, "stopping-worker", 600)
    assert lease is not None
    assert lease.stage == "probe"
    assert workers.hand_back(session, "someone-else") == 0
    assert workers.hand_back(session, "stopping-worker") == 1
    job = job_rows(session, recording.recording_id)["probe"]
    assert (job.state, job.attempts, job.lease_token) == ("queued", 0, None)
    assert job.last_error == "handed back by a stopping worker"
    with pytest.raises(LeaseLost):  # whatever the old thread computes can no longer commit
        jobs.renew(session, lease, 50, 600)
    again = jobs.claim(session, "next-worker", 600)
    assert again is not None
    assert (again.job_id, again.attempt) == (lease.job_id, 1)


# Real worker processes ---------------------------------------------------------------------


@pytest.fixture
def spawn_worker(settings: Settings, tmp_path: Path) -> Iterator[Spawn]:
    env = {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
        "APPLIANCE_JOBS__SWEEP_SECONDS": "1",
    }
    with worker_processes(env, tmp_path) as spawn:
        yield spawn


def stage_job(session: Session, recording_id: uuid.UUID, stage: str) -> Job:
    return job_rows(session, recording_id)[stage]


@pytest.mark.slow
def test_worker_processes_started_like_the_units_hand_a_recording_over(
    spawn_worker: Spawn,
    session: Session,
    settings: Settings,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    cpu = spawn_worker(*unit_arguments(CPU_UNIT))
    wait_until(lambda: workers.live_workers(session, 60))
    row = consented_session(session, bob.id, alice.id)  # recording only
    recording = add_recording(session, settings, store, row, make_audio("wav"))
    probe = wait_until(
        lambda: (
            (j := stage_job(session, recording.recording_id, "probe")).state == "succeeded" and j
        )
    )
    assert f":{cpu.pid}:" in (probe.worker or "")
    time.sleep(3)  # the CPU worker looks every 2 s; it must leave `transcribe` alone
    assert stage_job(session, recording.recording_id, "transcribe").state == "queued"

    gpu = spawn_worker(*unit_arguments(GPU_UNIT))
    # No one wakes it for this job: it finds it by looking on its own, and (no transcription
    # consent) cancels it.
    wait_until(
        lambda: stage_job(session, recording.recording_id, "transcribe").state == "cancelled"
    )
    for process in (cpu, gpu):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0


@pytest.mark.slow
def test_a_worker_stopped_in_the_middle_of_a_stage_hands_the_job_back_at_once(
    spawn_worker: Spawn,
    session: Session,
    settings: Settings,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    # A ten-minute lease: only the hand-back, not the sweep, can free the job in time.
    lease = {"APPLIANCE_JOBS__LEASE_SECONDS": "600"}
    stopping = spawn_worker("--only", "probe", **lease, **{PAUSE_ENV: "probe:computed"})
    row = consented_session(session, bob.id, alice.id)
    recording = add_recording(session, settings, store, row, make_audio("wav"))
    log: Path = stopping.log_path  # type: ignore[attr-defined]
    wait_until(lambda: "paused at probe:computed" in log.read_text())
    stopping.send_signal(signal.SIGTERM)  # what systemctl stop does
    assert stopping.wait(timeout=15) == 0
    job = stage_job(session, recording.recording_id, "probe")
    assert (job.state, job.attempts) == ("queued", 0)
    assert workers.live_workers(session, 600) == []

    spawn_worker("--only", "probe", **lease)
    job = wait_until(
        lambda: (
            (j := stage_job(session, recording.recording_id, "probe")).state == "succeeded" and j
        ),
        timeout=60,
    )
    assert job.attempts == 1
