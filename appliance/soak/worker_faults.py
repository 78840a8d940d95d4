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

Pieces: `soak.worker_harness` (the workers, the census), `soak.forkserver` (the process that
forks them), `soak.worker_faults_pg` (the PostgreSQL stop); this module is the kill rounds and
the command.
"""

from __future__ import annotations

import random
import signal
import statistics
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import click

# Re-exported (`as`): the CI tests reach the scenario's pieces through this module.
from appliance.soak.worker_faults_pg import own_appliance as own_appliance
from appliance.soak.worker_faults_pg import postgres_outage as postgres_outage
from appliance.soak.worker_harness import STAGES as STAGES
from appliance.soak.worker_harness import Census, compare, fake_speech, wait_until
from appliance.soak.worker_harness import Harness as Harness

MODES = ("claimed", "computed", "saved", "committed", "random")


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
