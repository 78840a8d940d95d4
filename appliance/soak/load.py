"""`appliance soak load`: simulated patients browsing the portal, measured with wrk (issue 10.5).

Why wrk: it is a standard, C, event-driven load generator from Debian (`apt-get install wrk`),
so on a 2-core box it takes little CPU from the server it measures (a Python load tool would
compete with the server for the same cores and inflate the figures it reports).

The load model, stated because figures mean nothing without it:
- `users` simulated patients = `users` wrk connections, each signed in once beforehand (a real
  sign-in through the portal form of a real `appliance web` process on a real database).
- Each patient browses the non-LLM portal pages in order (home, its stylesheet and script,
  homework, inbox, one message, consents, my-data) and waits a uniform random 1-3 s think time
  after every answer before the next request: a closed loop with think time, so throughput is
  about users / (mean think + mean latency), about 25 requests/s for 50 patients.
- Latency is wrk's, per request, from sending to the last byte; think time is not in it.
- An error is anything but a 200 (a 303 to the sign-in page is a lost session), plus wrk's
  socket errors and timeouts.
- Saturation (for honesty): the same plan with no think time, `users` connections back to back,
  which is the most this process serves on this box.

The database is seeded per run with `users` patients, each with all consents, two released
sessions with approved homework, and two sent messages; the driver works on a scratch appliance
of its own (embedded PostgreSQL) unless given a data directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import click

from appliance.settings import Settings

LUA = Path(__file__).with_name("portal_load.lua")
SETTLE_SECONDS = 5
THINK_MS = (1000, 3000)
PAGES = (
    "/portal",
    "/static/portal.css",
    "/static/portal.js",
    "/portal/homework",
    "/portal/messages",
    "/portal/messages/{message}",
    "/portal/consents",
    "/portal/my-data",
)


@dataclass(frozen=True)
class LoadPatient:
    email: str
    message_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. Latencies in milliseconds; `errors` counts every failed request."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: str

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def seed(
    settings: Settings, patients: int, password: str, sessions_each: int = 2
) -> list[LoadPatient]:
    """`patients` portal patients of one therapist, with what the portal pages show: all
    consents, `sessions_each` released sessions, each with two approved homework items and
    one sent message."""
    from appliance.audit.service import cli_actor
    from appliance.auth.guards import Principal
    from appliance.clinic import service
    from appliance.clinic.models import Role, User
    from appliance.clinic.passwords import hash_password
    from appliance.clinic.schemas import PatientCreate, UserCreate
    from appliance.consent import service as consent
    from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
    from appliance.crypto.service import keystore_for
    from appliance.db import open_database
    from appliance.messages import service as messages
    from appliance.messages.schemas import MessageCreate
    from appliance.recordings import service as sessions
    from appliance.recordings.models import TherapySession
    from appliance.recordings.schemas import SessionCreate
    from appliance.retrieval import facts
    from appliance.retrieval.models import FactKind

    store = keystore_for(settings)
    password_hash = hash_password(password)
    run = uuid.uuid4().hex[:8]
    it = cli_actor()
    made: list[LoadPatient] = []
    with open_database(settings) as database, database.session() as session:
        therapist_email = f"load-therapist-{run}@clinic.example"
        therapist = service.add_user(
            session,
            it,
            UserCreate(email=therapist_email, name="Load Therapist", role=Role.therapist),
        )
        sender = Principal(therapist.id, Role.therapist, "cli", "local", "soak-load")
        for n in range(patients):
            email = f"load-{run}-{n}@portal.example"
            patient = service.add_patient(
                session,
                store,
                it,
                PatientCreate(name=f"Load Patient {n}", therapist_email=therapist_email),
            )
            account = service.add_user(
                session, it, UserCreate(email=email, name=f"load{n}", role=Role.patient)
            )
            user = session.get(User, account.id)
            assert user is not None
            user.password_hash = password_hash  # one Argon2 hash for all: seeding, not signing in
            session.add(user)
            service.link_portal_user(session, it, patient.id, email)
            consent.change(
                session, it, patient.id, list(Purpose), ConsentStatus.granted, ConsentMethod.paper
            )
            message_ids = []
            for week in range(sessions_each):
                made_session = sessions.add_session(
                    session,
                    it,
                    SessionCreate(
                        patient_id=patient.id,
                        session_date=date(2026, 11, 12) - timedelta(weeks=week),
                        therapist_id=therapist.id,
                    ),
                )
                row = session.get(TherapySession, made_session.id)
                assert row is not None
                sessions.release(session, sender.actor(), row)
                for item in ("Read after twenty minutes awake", "Walk three mornings a week"):
                    facts.add(
                        session,
                        store,
                        sender.actor(),
                        row,
                        FactKind.homework,
                        f"{item} ({week})",
                        start=1.0,
                        end=2.0,
                        approved=True,
                    )
                message = messages.create(
                    session,
                    store,
                    sender,
                    MessageCreate(
                        patient_id=patient.id,
                        subject=f"Your practice, week {week}",
                        body="Keep the sleep diary and walk three mornings a week.",
                    ),
                )
                messages.submit(session, store, sender, message.id)
                messages.approve(session, store, sender, message.id, message.revision)
                message_ids.append(message.id)
            session.commit()
            made.append(LoadPatient(email, tuple(message_ids)))
    return made


def sign_in(base: str, patients: Sequence[LoadPatient], password: str) -> list[str]:
    """Each patient signs in once through the portal form; returns their Cookie headers."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    def one(patient: LoadPatient) -> str:
        with httpx.Client(base_url=base, timeout=60) as client:
            answer = client.post(
                "/portal/login", data={"email": patient.email, "password": password}
            )
            if answer.status_code != 303 or answer.headers.get("location") != "/portal":
                raise RuntimeError(f"sign-in failed with {answer.status_code}")
            return "; ".join(f"{k}={v}" for k, v in client.cookies.items())

    with ThreadPoolExecutor(max_workers=2) as pool:  # Argon2 takes a core each
        return list(pool.map(one, patients))


def write_plan(path: Path, patients: Sequence[LoadPatient], cookies: Sequence[str]) -> None:
    """The wrk plan: every patient's pages in browsing order, with that patient's cookie."""
    lines = []
    for patient, cookie in zip(patients, cookies, strict=True):
        for page in PAGES:
            lines.append(f"{cookie}\t{page.format(message=patient.message_ids[0])}")
    path.write_text("\n".join(lines) + "\n")


def run_wrk(
    base: str,
    plan: Path,
    users: int,
    seconds: int,
    think_ms: tuple[int, int] | None,
) -> WrkResult:
    """One wrk run over the plan (think time or closed loop); parses the script's summary."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise click.ClickException("wrk is not installed (apt-get install wrk)")
    low, high = think_ms or (0, 0)
    env = {
        **os.environ,
        "LOAD_PLAN": str(plan),
        "LOAD_THINK_MIN_MS": str(low),
        "LOAD_THINK_MAX_MS": str(high),
    }
    threads = max(1, min(2, users))
    done = subprocess.run(
        [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(users),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            base,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 60,
        check=True,
    )
    [line] = [x for x in done.stdout.splitlines() if x.startswith("LOADJSON ")]
    found = json.loads(line.removeprefix("LOADJSON "))
    socket_errors = sum(found[k] for k in ("connect", "read", "write", "timeout"))
    return WrkResult(
        requests=found["requests"],
        seconds=found["duration_us"] / 1e6,
        errors=found["not_ok"] + socket_errors,
        p50_ms=found["p50_us"] / 1000,
        p95_ms=found["p95_us"] / 1000,
        p99_ms=found["p99_us"] / 1000,
        max_ms=found["max_us"] / 1000,
        statuses=found["statuses"].strip(),
    )


@contextmanager
def scratch_appliance(data_dir: Path | None) -> Iterator[Settings]:
    """An initialised appliance: in `data_dir` if given, else a temporary one (removed)."""
    from appliance.instance import initialise
    from appliance.settings import load_settings

    if data_dir is not None:
        settings = load_settings(data_dir=data_dir)
        initialise(settings)
        yield settings
        return
    with tempfile.TemporaryDirectory(prefix="soak-load-") as tmp:
        settings = load_settings(data_dir=Path(tmp) / "var")
        initialise(settings)
        yield settings


@contextmanager
def web_process(settings: Settings, log_path: Path) -> Iterator[str]:
    """`appliance web` as its own process, as systemd runs it; yields its base URL."""
    import httpx

    from appliance.demo_chat import appliance_process

    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_DATA_DIR"] = str(settings.data_dir)
    if settings.database.url:
        env["APPLIANCE_DATABASE__URL"] = settings.database.url
    if settings.models_dir is not None:
        env["APPLIANCE_MODELS_DIR"] = str(settings.resolved_models_dir)

    def live(base: str) -> bool:
        return httpx.get(f"{base}/health/live").status_code == 200

    with appliance_process("web", env, log_path, live, wait_seconds=60) as base:
        yield base


def measure(
    base: str,
    plan: Path,
    users: int,
    seconds: int,
    repeat: int,
    saturation_seconds: int,
) -> tuple[list[WrkResult], list[WrkResult]]:
    """`repeat` runs with think time, each followed by a closed-loop saturation run."""
    run_wrk(base, plan, users, 3, None)  # warm-up: first-render caches, connection pools
    browsing, saturated = [], []
    for _ in range(repeat):
        # A closed-loop run leaves up to a second of queued requests in the server when wrk
        # stops; measured browsing must not start on top of that backlog.
        time.sleep(SETTLE_SECONDS)
        browsing.append(run_wrk(base, plan, users, seconds, THINK_MS))
        if saturation_seconds:
            saturated.append(run_wrk(base, plan, users, saturation_seconds, None))
    return browsing, saturated


def median_of(runs: Sequence[WrkResult]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p95_ms": statistics.median(r.p95_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "throughput": statistics.median(r.throughput for r in runs),
        "errors": sum(r.errors for r in runs),
        "requests": sum(r.requests for r in runs),
    }


@click.command("load")
@click.option("--users", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--seconds", type=click.IntRange(1, 3600), default=60, show_default=True)
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--saturation-seconds", type=click.IntRange(0, 600), default=15, show_default=True)
@click.option("--p95-ms", type=float, default=50.0, show_default=True, help="The target.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Appliance to seed and serve (default: a scratch one, removed afterwards).",
)
def load_command(
    users: int,
    seconds: int,
    repeat: int,
    saturation_seconds: int,
    p95_ms: float,
    data_dir: Path | None,
) -> None:
    """Simulated patients (1-3 s think time) on the portal's non-LLM pages, with wrk against
    a real `appliance web` process; prints the medians of the runs and the saturation figure.
    Exit 1 when the median p95 misses the target or any request failed."""
    password = secrets.token_urlsafe(16)
    with scratch_appliance(data_dir) as settings:
        click.echo(f"seeding {users} patients ...")
        patients = seed(settings, users, password)
        with (
            tempfile.TemporaryDirectory(prefix="soak-load-run-") as tmp,
            web_process(settings, Path(tmp) / "web.log") as base,
        ):
            cookies = sign_in(base, patients, password)
            plan = Path(tmp) / "plan.tsv"
            write_plan(plan, patients, cookies)
            browsing, saturated = measure(base, plan, users, seconds, repeat, saturation_seconds)
    click.echo(
        f"load model: {users} patients = {users} connections, signed in once each; "
        f"{len(PAGES)} non-LLM portal requests in browsing order; uniform "
        f"{THINK_MS[0] / 1000:g}-{THINK_MS[1] / 1000:g} s think time after each answer; "
        f"{seconds} s a run, {repeat} run(s); saturation = same plan, no think time"
    )
    for index, run in enumerate(browsing):
        sat = saturated[index] if saturated else None
        click.echo(
            f"run {index + 1}: {run.requests} requests, {run.throughput:.1f} req/s, "
            f"p50 {run.p50_ms:.1f} ms, p95 {run.p95_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, "
            f"max {run.max_ms:.1f} ms, errors {run.errors}"
            + (f" [{run.statuses}]" if run.statuses else "")
            + (
                f" | saturation {sat.throughput:.1f} req/s, p50 {sat.p50_ms:.1f} ms, "
                f"p95 {sat.p95_ms:.1f} ms, errors {sat.errors}"
                if sat
                else ""
            )
        )
    summary = median_of(browsing)
    line = (
        f"median of {repeat}: p50 {summary['p50_ms']:.1f} ms, p95 {summary['p95_ms']:.1f} ms, "
        f"p99 {summary['p99_ms']:.1f} ms, {summary['throughput']:.1f} req/s, "
        f"errors {summary['errors']:.0f} of {summary['requests']:.0f}"
    )
    if saturated:
        top = median_of(saturated)
        line += (
            f" | saturation (closed loop, {users} connections): {top['throughput']:.1f} req/s, "
            f"p50 {top['p50_ms']:.1f} ms, p95 {top['p95_ms']:.1f} ms, errors {top['errors']:.0f}"
        )
    click.echo(line)
    if summary["errors"] or summary["p95_ms"] > p95_ms:
        raise click.ClickException(f"target missed: p95 <= {p95_ms:g} ms with 0 errors")
