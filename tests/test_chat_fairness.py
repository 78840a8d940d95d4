"""Issue 10.5: chat under 10 concurrent patients is fair and bounded.

`appliance llm` (a real uvicorn server on loopback, with a fake model that takes a fixed time
per token) serves one answer at a time from a FIFO wait line of `[llm] max_queue` places:
with 10 patients asking, every one is answered, in the order they asked, none waits longer
than their place in line times one answer plus slack, and the 11th gets 503 + Retry-After as
problem+json. On the web side a patient has one question in flight at most (429 + Retry-After
otherwise: appliance/chat/inflight.py), so one patient pressing "ask" five times cannot push
the others back."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.chat.llm import ChatMessage, GenerationOptions, LlamaServiceClient
from appliance.chat.llm_service import create_llm_app
from appliance.clinic.schemas import UserPublic
from tests.chat_fakes import FakeChatModel
from tests.conftest import Browser, signed_in
from tests.retrieval_fixtures import Clinic
from tests.test_chat import clinic, practice  # noqa: F401  (bob's and charlie's sessions)
from tests.test_llm_service import llm_settings, queue, running, wait_for

PATIENTS = 10
PIECE_SECONDS = 0.05
REPLY = "Keep the sleep diary and walk three mornings a week."  # 10 pieces: 0.5 s an answer
SLACK_SECONDS = 1.5


def service_seconds(model: FakeChatModel) -> float:
    return len(model.pieces()) * model.delay


def ask_service(base: str, text: str) -> tuple[int, list[dict[str, Any]], float]:
    """One patient's question to `appliance llm`; status, NDJSON lines, when it finished."""
    body = {"messages": [{"role": "user", "content": text}]}
    with httpx.Client(base_url=base, timeout=60) as client:
        response = client.post("/v1/chat/stream", json=body)
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    return response.status_code, lines, time.monotonic()


@dataclass
class HeldModel(FakeChatModel):
    """The fake model, holding its first answer until `go` is set: the line fills up behind
    it in a known order before anything is served."""

    go: threading.Event = field(default_factory=threading.Event)

    def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
        self.go.wait(timeout=60)
        yield from super().stream(messages, options)


def test_ten_patients_asking_at_once_are_all_answered_first_come_first_served_within_bounds(
    tmp_path: Path,
) -> None:
    model = HeldModel(reply=REPLY, delay=PIECE_SECONDS)
    settings = llm_settings(tmp_path, max_queue=PATIENTS - 1)  # 1 answering + 9 waiting
    done: dict[int, tuple[int, list[dict[str, Any]], float]] = {}
    with running(create_llm_app(settings, model)) as base:
        threads = []
        for n in range(PATIENTS):  # one after the other, so the order they asked is known
            thread = threading.Thread(
                target=lambda n=n: done.__setitem__(n, ask_service(base, f"patient {n}")),
                daemon=True,
            )
            thread.start()
            threads.append(thread)
            wait_for(lambda n=n: queue(base) == {"running": 1, "waiting": n, "max": PATIENTS - 1})
        refused = httpx.post(
            f"{base}/v1/chat/stream", json={"messages": [{"role": "user", "content": "11th"}]}
        )
        started = time.monotonic()
        model.go.set()
        for thread in threads:
            thread.join(timeout=60)
        assert queue(base) == {"running": 0, "waiting": 0, "max": PATIENTS - 1}

    assert refused.status_code == 503
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["status"] == 503
    served = [call[-1].content for call in model.calls]
    assert served == [f"patient {n}" for n in range(PATIENTS)]  # FIFO
    one = service_seconds(model)
    for n in range(PATIENTS):
        status, lines, finished = done[n]
        assert status == 200
        assert "".join(line.get("delta", "") for line in lines) == REPLY  # whole answers
        assert lines[-1]["done"] is True
        assert finished - started <= (n + 1) * one + SLACK_SECONDS, (n, finished - started)


def test_one_patient_asking_five_times_at_once_gets_429s_and_cannot_push_another_back(
    tmp_path: Path,
    clinic: Clinic,  # noqa: F811
    practice: Any,  # noqa: F811
    people: dict[str, UserPublic],
    browser: Browser,
) -> None:
    model = FakeChatModel(reply="You kept the sleep diary every night.", delay=0.15)
    one = service_seconds(model)  # about 1 s an answer
    with running(create_llm_app(llm_settings(tmp_path), model)) as base:
        client = LlamaServiceClient(base)

        def tab(email: str) -> tuple[Any, str]:
            web, csrf = signed_in(browser, email)
            web.app.state.chat_model = client
            return web, csrf

        bob = tab("bob@portal.example")  # five presses from one page; the client is shared
        bobs = [bob] * 5
        charlie, charlies_csrf = tab("charlie@portal.example")

        def charlie_asks() -> tuple[Any, float]:
            asked = time.monotonic()
            response = charlie.post(
                "/api/v1/chat/stream",
                json={"question": "What did I dream of?"},
                headers={"X-CSRF-Token": charlies_csrf},
            )
            return response, time.monotonic() - asked

        charlie_asks()  # warm: his process's first question also loads the retrieval models
        gate = threading.Barrier(len(bobs))
        answers: list[Any] = [None] * len(bobs)

        def flood(n: int) -> None:
            web, csrf = bobs[n]
            gate.wait()
            answers[n] = web.post(
                "/api/v1/chat/stream",
                json={"question": "Did I keep the sleep diary every night?"},
                headers={"X-CSRF-Token": csrf},
            )

        threads = [threading.Thread(target=flood, args=(n,), daemon=True) for n in range(5)]
        for thread in threads:
            thread.start()
        wait_for(lambda: sum(a is not None for a in answers) == 4, seconds=30)  # the refusals
        assert queue(base)["waiting"] == 0  # bob holds at most one place in the line
        charlies, waited = charlie_asks()
        for thread in threads:
            thread.join(timeout=30)
        # The place is given back when the answer is done: bob may ask again.
        web, csrf = bobs[0]
        again = web.post(
            "/api/v1/chat",
            json={"question": "Did I keep the diary?"},
            headers={"X-CSRF-Token": csrf},
        )
        client.close()

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 429, 429, 429, 429]
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["status"] == 429
    assert charlies.status_code == 200
    assert "event: answer" in charlies.text
    assert len(model.calls) == 4  # charlie's two, bob's one of five, bob's next one
    assert waited <= 2 * one + SLACK_SECONDS, waited  # behind bob's one answer, not five
    assert again.status_code == 200, again.text


def test_a_stream_the_client_left_before_its_first_byte_still_gives_the_place_back() -> None:
    import gc

    from appliance.chat import inflight
    from appliance.errors import TooManyRequests

    patient = uuid.uuid4()
    inflight.admit(patient)
    with pytest.raises(TooManyRequests):
        inflight.admit(patient)
    never_started = inflight.released_after(patient, iter(["never sent"]))
    del never_started
    gc.collect()
    inflight.admit(patient)  # the place came back with the dropped stream
    inflight.release(patient)
