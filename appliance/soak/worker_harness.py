"""The worker side of `appliance soak worker-faults`: processes to kill and a census to count
what they left. Kept apart from the driver (`soak.worker_faults`) because the CI tests build a
`Harness` on the test suite's own appliance and the PostgreSQL scenario (`soak.worker_faults_pg`)
uses it too, while neither needs the round logic.

A `Harness` asks a fork server (`soak.forkserver`, one process that has imported the worker
once) for every worker, so a worker starts in milliseconds and is still a real process of its
own: `kill -9` ends it like any other. `Census` and `compare` are the check: what one
finished recording holds, in counts that a duplicate or a loss changes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGES = ("probe", "transcribe", "diarize", "attribute", "chunk", "embed", "report")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Worker:
    """A worker process forked by the fork server (which reaps it: we see it by its pid)."""

    pid: int
    log_path: Path

    def poll(self) -> int | None:
        """None while it runs (a zombie waiting for the fork server to reap it is gone)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return -1
        return -1 if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X") else None

    def wait(self, timeout: float) -> None:
        wait_until(lambda: self.poll() is not None, timeout, f"process {self.pid} to end")

    def send_signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, number)

    def said(self, text: str) -> bool:
        try:
            return text in self.log_path.read_text()
        except FileNotFoundError:  # not opened yet: the fork is a moment old
            return False


@dataclass(frozen=True)
class Census:
    """What one finished recording holds, in counts that a duplicate or a loss changes."""

    jobs: dict[str, tuple[str, int]]  # stage -> (state, attempts)
    outputs: dict[str, int]  # output table -> rows of this recording
    segments: int
    chunk_ordinals: tuple[int, ...]
    vectors_per_chunk: tuple[int, ...]
    leased: int  # jobs still running or holding a lease token


def tone_wav(seconds: float = 2.0, pitch: float = 220.0) -> bytes:
    """A short 16 kHz mono WAV: the fakes script what it "says"."""
    rate, buffer = 16000, io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        samples = (
            int(8000 * math.sin(2 * math.pi * pitch * i / rate)) for i in range(int(seconds * rate))
        )
        out.writeframes(b"".join(s.to_bytes(2, "little", signed=True) for s in samples))
    return buffer.getvalue()


class Harness:
    """Workers (fake backends) and recordings on one initialised appliance."""

    def __init__(self, settings: Any, logs: Path, patient_id: uuid.UUID, therapist_id: uuid.UUID):
        from appliance.crypto.service import keystore_for
        from appliance.db import open_database

        self.settings, self.logs = settings, logs
        self.patient_id, self.therapist_id = patient_id, therapist_id
        self.store = keystore_for(settings)
        self._database = open_database(settings)
        self.database = self._database.__enter__()
        self.started: list[Worker] = []
        self.env = {
            "APPLIANCE_DATA_DIR": str(settings.data_dir),
            "APPLIANCE_DATABASE__URL": settings.database.url or "",
            # A killed worker's lease runs out in two seconds; workers look every second.
            "APPLIANCE_JOBS__LEASE_SECONDS": "2",
            "APPLIANCE_JOBS__SWEEP_SECONDS": "1",
            "APPLIANCE_JOBS__BACKOFF_SECONDS": "1",
        }
        # One process imports the worker (seconds on two cores) and forks every worker.
        plain = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        threads = dict.fromkeys(["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"], "1")
        self.forkserver = subprocess.Popen(
            [sys.executable, "-m", "appliance.soak.forkserver"],
            env={**plain, **threads, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.forkserver.stdout is not None
        assert self.forkserver.stdout.readline() == "ready\n"

    def close(self) -> None:
        for worker in self.started:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except TimeoutError:
                    worker.send_signal(signal.SIGKILL)
        assert self.forkserver.stdin is not None
        self.forkserver.stdin.close()
        self.forkserver.wait(timeout=15)
        self._database.__exit__(None, None, None)

    def spawn(self, *arguments: str, **extra_env: str) -> Worker:
        """`appliance worker *arguments` (fake backends) as a new process forked from the
        fork server, its stdout and stderr in its own log file."""
        log = self.logs / f"worker-{len(self.started)}.log"
        order = {"arguments": arguments, "env": {**self.env, **extra_env}, "log": str(log)}
        assert self.forkserver.stdin is not None
        assert self.forkserver.stdout is not None
        self.forkserver.stdin.write(json.dumps(order) + "\n")
        self.forkserver.stdin.flush()
        worker = Worker(int(self.forkserver.stdout.readline()), log)
        self.started.append(worker)
        return worker

    def stop(self, worker: Worker) -> None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    def add_recording(self, day: int = 0) -> uuid.UUID:
        """A new session (all four consents) with one uploaded recording; its jobs queue."""
        from datetime import date, timedelta

        from appliance.audit.service import Actor
        from appliance.consent import service as consent
        from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
        from appliance.recordings import ingest
        from appliance.recordings import service as sessions
        from appliance.recordings.models import TherapySession
        from appliance.recordings.schemas import SessionCreate

        actor = Actor(role="cli", user_agent="soak worker-faults")
        with self.database.session() as session:
            consent.change(
                session,
                actor,
                self.patient_id,
                list(Purpose),
                ConsentStatus.granted,
                ConsentMethod.paper,
            )
            made = sessions.add_session(
                session,
                actor,
                SessionCreate(
                    patient_id=self.patient_id,
                    session_date=date(2026, 1, 1) + timedelta(days=day),
                    therapist_id=self.therapist_id,
                ),
            )
            session.commit()
            row = session.get(TherapySession, made.id)
            assert row is not None
            prepared = ingest.prepare(session, self.settings, self.store, actor, row, "s.wav", None)
            assert not isinstance(prepared, ingest.Accepted)
            prepared.write(tone_wav(pitch=200.0 + day))
            return uuid.UUID(str(prepared.finish(session).recording_id))

    def jobs(self, recording_id: uuid.UUID) -> list[Any]:
        from sqlmodel import select

        from appliance.jobs.models import Job

        with self.database.session() as session:
            return list(session.exec(select(Job).where(Job.recording_id == recording_id)))

    def finished(self, recording_id: uuid.UUID) -> bool:
        from appliance.jobs.models import FINISHED

        jobs = self.jobs(recording_id)
        return bool(jobs) and all(job.state in FINISHED for job in jobs)

    def census(self, recording_id: uuid.UUID) -> Census:
        from sqlalchemy import func
        from sqlmodel import col, select

        from appliance.pipeline.models import Attribution, Diarization, RecordingProbe, Transcript
        from appliance.pipeline.transcripts import recording_segments
        from appliance.recordings.models import Recording
        from appliance.reports.models import SessionReport
        from appliance.retrieval.models import ChunkEmbedding, TranscriptChunk

        jobs = {job.stage: (job.state, job.attempts) for job in self.jobs(recording_id)}
        leased = sum(
            1
            for job in self.jobs(recording_id)
            if job.state == "running" or job.lease_token is not None
        )
        with self.database.session() as session:
            recording = session.get(Recording, recording_id)
            assert recording is not None

            def rows(model: Any, key: Any, value: Any) -> int:
                return int(session.exec(select(func.count()).where(key == value)).one())

            outputs = {
                model.__tablename__: rows(model, model.recording_id, recording_id)
                for model in (RecordingProbe, Transcript, Diarization, Attribution)
            }
            outputs["session_reports"] = rows(
                SessionReport, SessionReport.session_id, recording.session_id
            )
            chunks = session.exec(
                select(TranscriptChunk)
                .where(TranscriptChunk.recording_id == recording_id)
                .order_by(col(TranscriptChunk.ordinal))
            ).all()
            vectors = [rows(ChunkEmbedding, ChunkEmbedding.chunk_id, chunk.id) for chunk in chunks]
            segments = len(recording_segments(session, self.store, recording))
        return Census(
            jobs,
            outputs,
            segments,
            tuple(c.ordinal for c in chunks),
            tuple(vectors),
            leased,
        )


def compare(census: Census, reference: Census) -> tuple[int, int, list[str]]:
    """(duplicates, missing, problems) of a faulted recording against the clean one."""
    duplicates = missing = 0
    problems: list[str] = []

    def tally(what: str, have: int, want: int) -> None:
        nonlocal duplicates, missing
        if have > want:
            duplicates += have - want
            problems.append(f"{what}: {have} where {want}")
        elif have < want:
            missing += want - have
            problems.append(f"{what}: {have} where {want}")

    for stage in STAGES:
        state, attempts = census.jobs.get(stage, ("absent", 0))
        tally(f"{stage} jobs", int(stage in census.jobs), 1)
        if state != "succeeded" or attempts < 1:
            missing += state != "succeeded"
            problems.append(f"{stage} job {state} after {attempts} attempts")
    for table, want in reference.outputs.items():
        tally(table, census.outputs.get(table, 0), want)
    tally("transcript segments", census.segments, reference.segments)
    tally("chunks", len(census.chunk_ordinals), len(reference.chunk_ordinals))
    if census.chunk_ordinals != tuple(range(len(census.chunk_ordinals))):
        problems.append(f"chunk ordinals not contiguous: {census.chunk_ordinals}")
    for ordinal, count in zip(census.chunk_ordinals, census.vectors_per_chunk, strict=True):
        tally(f"vectors of chunk {ordinal}", count, 1)
    if census.leased:
        problems.append(f"{census.leased} jobs still leased")
    return duplicates, missing, problems


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def fake_speech() -> Any:
    """`tests.speech_fakes.FakeSpeech()`: the soak runs from a source checkout."""
    import importlib

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.speech_fakes").FakeSpeech()
