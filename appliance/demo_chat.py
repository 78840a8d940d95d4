"""The demo's last step: the patient's question answered in words by the local LLM, through
the same service `POST /api/v1/chat` uses, with `appliance llm` running as its own process (as
systemd runs it in a clinic), so the demo process never loads the model's weights."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from appliance.audit.service import cli_actor
from appliance.crypto.service import keystore_for
from appliance.db import open_database
from appliance.pipeline.exports import minute_clock
from appliance.settings import Settings


@contextmanager
def llm_service(settings: Settings, wait_seconds: float = 180) -> Iterator[str]:
    """`appliance llm` on a free loopback port until the block ends; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = settings.data_dir / "llm.log"
    env = {**os.environ, "APPLIANCE_DATA_DIR": str(settings.data_dir)}
    if settings.models_dir is not None:
        env["APPLIANCE_MODELS_DIR"] = str(settings.resolved_models_dir)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "appliance", "llm", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=5).json().get("status") == "ok":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"appliance llm did not start; see {log_path}")
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def answer_question(settings: Settings, patient_id: uuid.UUID, question: str) -> list[str]:
    """Start the LLM service, ask as the patient's chat would, print answer and citations."""
    from appliance.chat import service
    from appliance.chat.llm import LlamaServiceClient

    started = time.monotonic()
    with llm_service(settings) as base, LlamaServiceClient(base) as model:
        loaded = time.monotonic() - started
        with open_database(settings) as database, database.session() as session:
            context = service.ChatContext(
                session, keystore_for(settings), settings, cli_actor(), model
            )
            asked = time.monotonic()
            found = service.answer(context, patient_id, question)
            took = time.monotonic() - asked
        model_id = model.model_id
    lines = [
        f"{model_id} loaded in {loaded:.1f} s (its own process); answered in {took:.1f} s:",
        f"  {found.answer}" + (f"  (refused: {found.reason})" if found.refused else ""),
    ]
    for n, c in enumerate(found.citations, start=1):
        lines.append(f"  [{n}] session of {c.session_date}, {minute_clock(c.start)}: {c.excerpt}")
    return lines
