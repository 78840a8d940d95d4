"""The LLM half of `appliance soak web-faults` (issue 10, item 1): the model service dies
mid-answer (SIGKILL, or SIGTERM as a restart sends it) while the patient's answer streams.

The service is a loopback stand-in with `appliance llm`'s NDJSON wire format whose reply
stalls after its first sentence (touching a marker file), so the kill always lands mid-answer:
after the web app has shown the patient a verified sentence and before the answer is whole.
The real GGUF service ends a stream the same way when it dies; the stand-in makes the moment
deterministic and the run fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.soak.web_faults import Site, Tally, process, sign_in

REPLY = "You kept the sleep diary every night. You fell asleep after midnight four times."
QUESTION = "Did I keep the sleep diary every night?"


def serve_fake_llm(port: int, marker: str, stall: bool) -> None:
    """A loopback stand-in for `appliance llm` (same NDJSON wire format) whose reply stalls
    after its first sentence when `stall`, touching `marker`: the moment to kill it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            return

        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", "model_id": "soak-fake@sha256:0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def send(event: dict[str, Any]) -> None:
                data = (json.dumps(event) + "\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            first, rest = REPLY.split(". ", 1)
            send({"delta": first + ". You"})
            if stall:
                Path(marker).touch()
                time.sleep(600)
            send({"delta": rest[3:]})
            send({"done": True, "finish_reason": "stop"})
            self.wfile.write(b"0\r\n\r\n")

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


@contextmanager
def fake_llm(
    site: Site, port: int, *, stall: bool
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    import httpx

    marker = site.logs / f"llm-{uuid.uuid4().hex[:8]}.streaming"
    code = (
        "from appliance.soak.web_faults_llm import serve_fake_llm; "
        f"serve_fake_llm({port}, {str(marker)!r}, {stall})"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    live = lambda: httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200  # noqa: E731
    with process(
        [sys.executable, "-c", code, "", "fake-llm"], env, site.logs / "llm.log", live
    ) as child:
        yield child, marker


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    name, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            yield name, json.loads("\n".join(data))
            name, data = "message", []


def assistant_turns_and_failures(site: Site, conversation_ids: set[str]) -> tuple[int, int]:
    """Assistant turns stored in these conversations, and `chat.answer` failures audited."""
    from sqlmodel import col, select

    from appliance.audit.models import AuditEvent
    from appliance.chat.models import ChatTurn
    from appliance.db import open_database

    ids = [uuid.UUID(c) for c in conversation_ids]
    with open_database(site.settings) as database, database.session() as session:
        turns = session.exec(
            select(ChatTurn.id).where(
                col(ChatTurn.conversation_id).in_(ids), ChatTurn.role == "assistant"
            )
        ).all()
        failures = [
            e
            for e in session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "chat.answer", AuditEvent.outcome == "failure"
                )
            ).all()
            if (e.details or {}).get("conversation_id") in conversation_ids
        ]
    return len(turns), len(failures)


def kill_llm_mid_answer(
    site: Site, tally: Tally, base: str, port: int, how: signal.Signals
) -> dict[str, Any]:
    """(c) The model service dies (`how`) mid-answer, on the streaming API, the JSON API and
    the portal's no-JavaScript form: an error each time, never an answer; then, restarted,
    it answers whole."""
    seen: dict[str, Any] = {}
    client, headers = sign_in(base, site.patient_email, site.password)
    before = conversation_ids(site)

    def killed(ask: Callable[[], Any]) -> Any:
        """Runs `ask` while the service streams; kills the service when it stalls."""
        with fake_llm(site, port, stall=True) as (llm, marker):
            result: list[Any] = []
            asker = threading.Thread(target=lambda: result.append(ask()))
            asker.start()
            deadline = time.monotonic() + 30
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            llm.send_signal(how)
            llm.wait(10)
            asker.join(60)
        return result[0] if result else None

    def stream() -> list[tuple[str, Any]]:
        body = {"question": QUESTION}
        with client.stream("POST", "/api/v1/chat/stream", json=body, headers=headers) as r:
            tally.status(r.status_code, "chat stream")
            return list(sse_events(r.iter_lines()))

    events = killed(stream) or []
    kinds = [kind for kind, _ in events]
    seen["stream"] = kinds
    if "answer" in kinds or "error" not in kinds:
        tally.half_answers += 1
        tally.notes.append(f"stream after the model died: {kinds}")
    for kind, data in events:
        if kind == "error":
            tally.status(int(data.get("status", 500)), "chat stream error event")

    plain = killed(
        lambda: client.post("/api/v1/chat", json={"question": QUESTION}, headers=headers)
    )
    seen["json"] = plain.status_code
    tally.status(plain.status_code, "chat JSON")
    if plain.status_code == 200:
        tally.half_answers += 1
    form = {"question": QUESTION, "csrf_token": headers["X-CSRF-Token"]}
    page = killed(lambda: client.post("/portal/ask", data=form))
    seen["page"] = page.status_code
    tally.status(page.status_code, "portal ask page")
    if page.status_code < 400 or "midnight" in page.text:
        tally.half_answers += 1

    conversations = conversation_ids(site) - before
    turns, failures = assistant_turns_and_failures(site, conversations)
    seen["assistant_turns"], seen["audited_failures"] = turns, failures
    tally.half_answers += turns
    tally.unaudited += max(0, 3 - failures)

    ask = {"question": QUESTION}
    with (
        fake_llm(site, port, stall=False),  # restarted: a whole answer again
        client.stream("POST", "/api/v1/chat/stream", json=ask, headers=headers) as r,
    ):
        whole = list(sse_events(r.iter_lines()))
    seen["recovered"] = [kind for kind, _ in whole]
    if not whole or whole[-1][0] != "answer":
        tally.notes.append(f"no whole answer after the restart: {seen['recovered']}")
        tally.half_answers += 1
    client.close()
    return seen


def conversation_ids(site: Site) -> set[str]:
    from sqlmodel import select

    from appliance.chat.models import Conversation
    from appliance.db import open_database

    with open_database(site.settings) as database, database.session() as session:
        return {str(c) for c in session.exec(select(Conversation.id)).all()}
