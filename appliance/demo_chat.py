"""The demo's last step: the patient signs in to the portal and asks; the web app streams the
answer from `appliance llm`, running as its own process (as systemd runs it in a clinic), so
neither the demo nor the web process loads the model's weights."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from appliance.audit.service import cli_actor
from appliance.db import open_database
from appliance.pipeline.exports import minute_clock
from appliance.settings import Settings


@contextmanager
def appliance_process(
    command: str,
    env: dict[str, str],
    log_path: Path,
    ready: Callable[[str], bool],
    wait_seconds: float,
) -> Iterator[str]:
    """`appliance <command> --port P` as its own process on a free loopback port, as systemd
    would run it, until the block ends; yields its base URL once `ready(base)` says so."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", command, "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                if ready(base):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"appliance {command} did not start; see {log_path}:\n{tail}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def llm_service(settings: Settings, wait_seconds: float = 180) -> Iterator[str]:
    """`appliance llm` on a free loopback port until the block ends; yields its base URL."""
    env = {**os.environ, "APPLIANCE_DATA_DIR": str(settings.data_dir)}
    if settings.models_dir is not None:
        env["APPLIANCE_MODELS_DIR"] = str(settings.resolved_models_dir)

    def loaded(base: str) -> bool:
        return bool(httpx.get(f"{base}/health", timeout=5).json().get("status") == "ok")

    with appliance_process("llm", env, settings.data_dir / "llm.log", loaded, wait_seconds) as base:
        yield base


@contextmanager
def web_server(settings: Settings) -> Iterator[str]:
    """The web app on a free loopback port (uvicorn in a thread) until the block ends."""
    import threading

    import uvicorn

    from appliance.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_config=None, access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the web service did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def portal_account(settings: Settings, patient_id: uuid.UUID, email: str) -> str:
    """The demo patient's portal account, with a fresh random password (returned, to print:
    this is a demo data directory, and a re-run must still be able to sign in)."""
    from appliance.auth.service import set_password
    from appliance.clinic import service
    from appliance.clinic.models import Role
    from appliance.clinic.schemas import UserCreate

    password = secrets.token_urlsafe(12)
    actor = cli_actor()
    with open_database(settings) as database, database.session() as session:
        if service.find_user(session, email) is None:
            service.add_user(
                session, actor, UserCreate(email=email, name="Demo patient", role=Role.patient)
            )
            service.link_portal_user(session, actor, patient_id, email)
        set_password(session, actor, email, password)
        session.commit()
    return password


def answer_on_portal(
    settings: Settings, llm: str, email: str, password: str, question: str
) -> list[str]:
    """The patient signs in to the portal and asks; the web process streams the answer from
    `appliance llm` (its own process, at `llm`); the cited minute is fetched as the portal
    plays it."""
    from appliance.demo_report import with_llm

    with (
        web_server(with_llm(settings, llm)) as base,
        httpx.Client(base_url=base, timeout=300) as web,
    ):
        signed = web.post("/api/v1/auth/login", json={"email": email, "password": password})
        signed.raise_for_status()
        asked = time.monotonic()
        events = _stream(web, signed.json()["csrf_token"], question)
        took = time.monotonic() - asked
        final = events[-1][1]
        if events[-1][0] != "answer":
            raise RuntimeError(f"the portal's answer failed: {final.get('detail')}")
        clip = b""
        for c in [c for c in final["citations"] if c.get("in_recording", True)][:1]:
            query = {"start": f"{c['start']:.2f}", "end": f"{c['end']:.2f}"}
            played = web.get(f"/portal/listen/{c['session_id']}", params=query)
            played.raise_for_status()
            clip = played.content
    deltas = sum(1 for kind, _ in events if kind == "delta")
    lines = [
        f"the portal streamed {deltas} verified piece(s) and the answer in {took:.1f} s:",
        f"  {final['answer']}" + (f"  (refused: {final['reason']})" if final["refused"] else ""),
    ]
    for n, c in enumerate(final["citations"], start=1):
        at = minute_clock(c["start"]) if c.get("in_recording", True) else "therapist's notes"
        lines.append(f"  [{n}] session of {c['session_date']}, {at}: {c['excerpt']}")
    if clip:
        lines.append(f"  the cited minute, as the portal plays it: {len(clip) // 1024} KB of WAV")
    return lines


def _stream(web: httpx.Client, csrf: str, question: str) -> list[tuple[str, dict[str, Any]]]:
    """The Server-Sent Events of `POST /api/v1/chat/stream`, as (event, data) pairs."""
    events: list[tuple[str, dict[str, Any]]] = []
    headers = {"X-CSRF-Token": csrf}
    with web.stream(
        "POST", "/api/v1/chat/stream", json={"question": question}, headers=headers
    ) as response:
        response.raise_for_status()
        kind = "message"
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line[5:])))
    return events
