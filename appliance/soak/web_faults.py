"""`appliance soak web-faults`: the web process killed mid-upload, the files disk filled, the
LLM service killed or restarted mid-answer (issue 10, item 1), repeated for N rounds.

Everything is real: `appliance web` as its own process (killed with SIGKILL), a size-limited
tmpfs mounted over the files directory (root only), and a loopback NDJSON model service that
stalls after its first sentence so that it is always killed mid-answer. After each fault the
driver counts what must stay zero: orphan files (temp or unreferenced), orphan rows, server
errors other than 503/507, and half answers (an answer, or a stored reply, after the model
died). The CI tests (tests/test_faults_web.py) call the same scenario functions once each.

The scratch appliance the command runs on is `soak.scratch`; the LLM faults are
`soak.web_faults_llm`.
"""

from __future__ import annotations

import io
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from appliance.soak.scratch import Site as Site  # re-exported: the LLM faults, the tests
from appliance.soak.scratch import scratch_site

if TYPE_CHECKING:
    import httpx

ALLOWED_5XX = frozenset({503, 507})


@dataclass
class Tally:
    """What every scenario adds to; all but `rounds` must stay zero."""

    rounds: int = 0
    orphan_files: int = 0
    orphan_rows: int = 0
    server_errors: int = 0  # 5xx other than 503 (unavailable) and 507 (disk full)
    half_answers: int = 0
    unaudited: int = 0  # an answer that broke off without its failure in the audit trail
    notes: list[str] = field(default_factory=list)

    def status(self, code: int, what: str) -> None:
        if code >= 500 and code not in ALLOWED_5XX:
            self.server_errors += 1
            self.notes.append(f"{what}: {code}")

    def clean(self) -> bool:
        bad = (self.orphan_files, self.orphan_rows, self.server_errors, self.half_answers)
        return not any(bad) and not self.unaudited

    def summary(self) -> str:
        return (
            f"rounds {self.rounds}, orphan files {self.orphan_files}, orphan rows "
            f"{self.orphan_rows}, 5xx other than 503/507 {self.server_errors}, half answers "
            f"{self.half_answers}, unaudited failures {self.unaudited}"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wav(seconds: float) -> bytes:
    """A mono 16-bit 400 Hz tone: real audio that the probe decodes (32 kB a second)."""
    period = b"".join(
        int(8000 * math.sin(2 * math.pi * i / 40)).to_bytes(2, "little", signed=True)
        for i in range(40)  # 400 Hz at 16 kHz: one period is 40 samples
    )
    frames = period * (int(seconds * 16000) // 40)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(frames)
    return out.getvalue()


@contextmanager
def process(
    args: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool], wait: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process until the block ends (SIGTERM, then SIGKILL); ready when `ready()`."""
    import httpx

    with log.open("ab") as out:
        child = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if ready():
                    break
            except (httpx.HTTPError, OSError):
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[3:5]} did not start; see {log}")
            time.sleep(0.1)
        yield child
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@contextmanager
def web(site: Site, **extra_env: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`appliance web` on a free loopback port: (the process, its base URL)."""
    import httpx

    settings = site.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update(
        APPLIANCE_DATA_DIR=str(settings.data_dir),
        APPLIANCE_DATABASE__URL=settings.database.url or "",
        **extra_env,
    )
    if settings.models_dir is not None:
        env["APPLIANCE_MODELS_DIR"] = str(settings.resolved_models_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "appliance", "web", "--port", str(port)]
    live = lambda: httpx.get(f"{base}/health/live").status_code == 200  # noqa: E731
    with process(args, env, site.logs / "web.log", live) as child:
        yield child, base


def sign_in(base: str, email: str, password: str) -> tuple[httpx.Client, dict[str, str]]:
    """A client with a session cookie, and the CSRF header its writes need."""
    import httpx

    client = httpx.Client(base_url=base, timeout=60, trust_env=False)
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    response.raise_for_status()
    return client, {"X-CSRF-Token": response.json()["csrf_token"]}


def check_storage(site: Site, tally: Tally, what: str) -> tuple[int, int]:
    """Every recording row has its file and every file its row; no temp file is left.
    Returns (rows, files)."""
    from sqlmodel import select

    from appliance.db import open_database
    from appliance.recordings.models import Recording
    from appliance.recordings.partials import partial_uploads

    files_dir = site.settings.files_dir
    with open_database(site.settings) as database, database.session() as session:
        rows = session.exec(select(Recording.id, Recording.patient_id)).all()
    expected = {files_dir / str(p) / "recordings" / f"{r}.rec" for r, p in rows}
    present = set(files_dir.glob("*/recordings/*.rec"))
    temps = partial_uploads(files_dir)
    tally.orphan_files += len(present - expected) + len(temps)
    tally.orphan_rows += len(expected - present)
    if temps or present ^ expected:
        tally.notes.append(f"{what}: {len(temps)} temp, {len(present ^ expected)} unmatched")
    return len(rows), len(present)


def upload(client: httpx.Client, headers: dict[str, str], site: Site, body: Any) -> Any:
    return client.post(
        f"/api/v1/sessions/{site.session_id}/recording", content=body, headers=headers
    )


def fault_env(llm_port: int) -> dict[str, str]:
    """The web process's settings for the rounds: a 1 MB free-space reserve (so a 2 MiB disk
    shows both the early refusal and ENOSPC mid-write), the fake model's port, no hourly cap."""
    return {
        "APPLIANCE_RECORDINGS__MIN_FREE_MB": "1",
        "APPLIANCE_LLM__PORT": str(llm_port),
        "APPLIANCE_CHAT__QUESTIONS_PER_HOUR": "10000",
    }


@contextmanager
def kill_mid_upload(
    site: Site, tally: Tally, seen: dict[str, Any], env: dict[str, str]
) -> Iterator[str]:
    """(a) SIGKILL `appliance web` while a recording streams in, restart it: nothing of the
    upload stays, and the next upload works. Yields the restarted web's base URL."""
    from appliance.recordings.partials import partial_uploads

    rows_before, _ = check_storage(site, tally, "before kill")
    audio = wav(60)
    started = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for start in range(0, len(audio), 64 * 1024):
            if start >= 1024 * 1024:
                started.set()
                time.sleep(0.2)
            yield audio[start : start + 64 * 1024]

    with web(site, **env) as (child, base):
        client, headers = sign_in(base, site.staff_email, site.password)
        errors: list[BaseException] = []

        def send() -> None:
            try:
                upload(client, headers, site, slow_body())
            except Exception as exc:  # the server died under it: expected
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        started.wait(30)
        deadline = time.monotonic() + 10  # the encrypted temp file exists, the first MiB in it
        while not partial_uploads(site.settings.files_dir) and time.monotonic() < deadline:
            time.sleep(0.02)
        left_by_kill = len(partial_uploads(site.settings.files_dir))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        sender.join(60)
        client.close()
    with web(site, **env) as (_, base):  # the restart sweeps what the killed process left
        rows_after, _ = check_storage(site, tally, "after restart")
        if rows_after != rows_before:
            tally.orphan_rows += abs(rows_after - rows_before)
        client, headers = sign_in(base, site.staff_email, site.password)
        again = upload(client, headers, site, wav(2))
        tally.status(again.status_code, "upload after restart")
        client.close()
        check_storage(site, tally, "after recovery")
        seen.update(left_by_kill=left_by_kill, recovered=again.status_code)
        yield base


@contextmanager
def small_disk(directory: Path, size: str) -> Iterator[None]:
    """A size-limited tmpfs over `directory` (root only); always unmounted."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def can_mount() -> str | None:
    """None when a tmpfs can be mounted here; otherwise why not."""
    if os.geteuid() != 0:
        return "mounting a size-limited tmpfs needs root"
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", scratch], capture_output=True
        )
        if done.returncode != 0:
            return f"mount failed: {done.stderr.decode(errors='replace').strip()[:200]}"
        subprocess.run(["umount", scratch], check=False)
    return None


def fill_disk(site: Site, tally: Tally, base: str) -> dict[str, Any]:
    """(b) A full files disk: the reserve refuses a declared upload at once, a chunked one
    fails mid-write; both 507 problems with nothing stored; freed, the same upload succeeds."""
    audio = wav(100)  # 3.2 MB against a 2 MiB disk and a 1 MB reserve
    files_dir = site.settings.files_dir
    seen: dict[str, Any] = {}
    rows_before, _ = check_storage(site, tally, "before full disk")
    client, headers = sign_in(base, site.staff_email, site.password)
    with small_disk(files_dir, "2m"):
        declared = upload(client, headers, site, audio)
        chunked = upload(
            client,
            headers,
            site,
            iter([audio[i : i + 65536] for i in range(0, len(audio), 65536)]),
        )
        for name, response in (("declared", declared), ("chunked", chunked)):
            tally.status(response.status_code, f"{name} upload on a full disk")
            seen[name] = (response.status_code, response.headers.get("content-type", ""))
            seen[name + "_title"] = response.json().get("title")
        form = client.post(  # the console's no-JavaScript form: the same path, shown on the page
            f"/console/sessions/{site.session_id}/recording",
            data={"csrf_token": headers["X-CSRF-Token"]},
            files={"recording": ("session.wav", audio, "audio/wav")},
        )
        tally.status(form.status_code, "form upload on a full disk")
        seen["form"] = form.status_code
        stranded = [p for p in files_dir.rglob("*") if p.is_file()]
        tally.orphan_files += len(stranded)
    rows_full, _ = check_storage(site, tally, "after full disk")
    tally.orphan_rows += abs(rows_full - rows_before)
    again = upload(client, headers, site, audio)
    tally.status(again.status_code, "upload after freeing space")
    seen["recovered"] = again.status_code
    client.close()
    check_storage(site, tally, "after recovery")
    return seen


def one_round(site: Site, tally: Tally, how: signal.Signals, *, mount: bool) -> dict[str, Any]:
    """(a), then (b) and (c) against the restarted web process."""
    from appliance.soak.web_faults_llm import kill_llm_mid_answer

    port = free_port()
    seen: dict[str, Any] = {}
    with kill_mid_upload(site, tally, seen, fault_env(port)) as base:
        if mount:
            seen["disk"] = fill_disk(site, tally, base)
        seen["llm"] = kill_llm_mid_answer(site, tally, base, port, how)
    return seen


@click.command("web-faults")
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(1, 10_000))
def web_faults_command(rounds: int) -> None:
    """Kill `appliance web` mid-upload, fill the files disk (root: a 2 MiB tmpfs), kill the
    LLM service mid-answer (SIGKILL and SIGTERM in turn), ROUNDS times on a scratch appliance.
    Exit 1 unless orphan files, orphan rows, 5xx other than 503/507 and half answers are 0."""
    tally = Tally()
    no_mount = can_mount()
    if no_mount is not None:
        click.echo(f"full-disk faults skipped: {no_mount}")
    with (
        tempfile.TemporaryDirectory(prefix="soak-web-faults-") as root,
        scratch_site(Path(root)) as site,
    ):
        for n in range(rounds):
            how = signal.SIGKILL if n % 2 == 0 else signal.SIGTERM
            one_round(site, tally, how, mount=no_mount is None)
            tally.rounds += 1
            click.echo(f"round {n + 1}/{rounds}: {tally.summary()}")
    for note in tally.notes:
        click.echo(f"  {note}")
    click.echo(("PASS " if tally.clean() else "FAIL ") + tally.summary())
    if not tally.clean():
        raise SystemExit(1)
