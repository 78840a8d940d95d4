"""`appliance llm` and its client: NDJSON streaming, validation, the bounded wait line,
cancellation when the client goes away, and the real demo GGUF end to end."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import TestClient

from appliance.chat.llm import (
    ChatMessage,
    GenerationOptions,
    LlamaServiceClient,
    ModelBusy,
    ModelUnavailable,
)
from appliance.chat.llm_service import create_llm_app, serve
from appliance.demo_chat import llm_service
from appliance.errors import Invalid
from appliance.modelfiles.manifest import load_manifest
from appliance.settings import LlmSettings, Settings, SettingsError, load_settings
from tests.chat_fakes import FakeChatModel
from tests.conftest import REPO, run_cli

QUESTION = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "What homework?")]
BODY = {"messages": [{"role": "user", "content": "What homework did we agree on?"}]}
LLM_MODEL = "qwen2.5-0.5b-instruct-q4"


def llm_settings(tmp_path: Path, models_dir: Path = REPO / "models", **llm: Any) -> Settings:
    return load_settings(data_dir=tmp_path / "var", models_dir=models_dir, llm=llm)


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@contextmanager
def running(app: Litestar) -> Iterator[str]:
    """The app on a real uvicorn server in a thread: real sockets, so a closed connection is
    a real disconnect (the test client buffers whole responses)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def queue(base: str) -> dict[str, int]:
    result: dict[str, int] = httpx.get(f"{base}/health").json()["queue"]
    return result


# The service with a fake model (test client) ----------------------------------------------------


def test_a_reply_streams_as_ndjson_deltas_then_one_done_line(tmp_path: Path) -> None:
    fake = FakeChatModel(reply="Walk every morning.")
    with TestClient(app=create_llm_app(llm_settings(tmp_path), fake)) as client:
        body = {
            "messages": [
                {"role": "system", "content": "Answer from the passages."},
                {"role": "user", "content": "What homework?"},
            ],
            "temperature": 0.0,
            "stop": ["\n\n"],
        }
        response = client.post("/v1/chat/stream", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = events(response.text)
    assert [line["delta"] for line in lines[:-1]] == ["Walk", " every", " morning."]
    assert lines[-1] == {"done": True, "finish_reason": "stop", "tokens": 3}
    assert fake.calls == [
        [ChatMessage("system", "Answer from the passages."), ChatMessage("user", "What homework?")]
    ]
    assert fake.options == [GenerationOptions(max_tokens=512, temperature=0.0, stop=("\n\n",))]


def test_an_answer_cut_at_max_tokens_says_length(tmp_path: Path) -> None:
    fake = FakeChatModel(reply="one two three four five")
    with TestClient(app=create_llm_app(llm_settings(tmp_path), fake)) as client:
        response = client.post("/v1/chat/stream", json={**BODY, "max_tokens": 2})
    assert events(response.text)[-1] == {"done": True, "finish_reason": "length", "tokens": 2}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "hi"}]}, "role"),
        ({"messages": [{"role": "user", "content": ""}]}, "content"),
        ({"messages": [{"role": "user", "content": "x" * 32_001}]}, "content"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 513}, "max_tokens"),
        ({"temperature": 3.0}, "temperature"),
        ({"stop": [""]}, "stop"),
        ({"prompt": "raw prompts are not accepted"}, "prompt"),
    ],
)
def test_invalid_requests_are_refused_with_a_422_problem_before_any_generation(
    tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    fake = FakeChatModel()
    with TestClient(app=create_llm_app(llm_settings(tmp_path), fake)) as client:
        response = client.post("/v1/chat/stream", json={**BODY, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in json.dumps(response.json()["errors"])
    assert fake.calls == []


def test_a_failure_mid_answer_ends_the_stream_with_an_error_line_and_logs_no_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeChatModel(reply="a b c d", fail_after=2, failure=RuntimeError("Bob said secret"))
    with TestClient(app=create_llm_app(llm_settings(tmp_path), fake)) as client:
        response = client.post("/v1/chat/stream", json=BODY)
        # The generation thread hands the slot back through the event loop, just after the
        # last line is sent: the line must be free again soon, not at the same instant.
        wait_for(lambda: client.get("/health").json()["queue"]["running"] == 0)
        health = client.get("/health").json()
    lines = events(response.text)
    assert [line.get("delta") for line in lines[:2]] == ["a", " b"]
    assert lines[-1] == {"error": "generation_failed", "detail": "RuntimeError"}
    assert "secret" not in response.text
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "RuntimeError" in logged
    assert "secret" not in logged
    assert "homework" not in logged
    assert health["queue"] == {"running": 0, "waiting": 0, "max": 8}


def test_health_names_the_model_and_shows_the_line(tmp_path: Path) -> None:
    settings = llm_settings(tmp_path, n_gpu_layers=-1, max_queue=3)
    with TestClient(app=create_llm_app(settings, FakeChatModel())) as client:
        health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "model": LLM_MODEL,
        "model_id": "fake-chat",
        "sha256": None,
        "n_ctx": 4096,
        "n_gpu_layers": -1,
        "gpu_offload": None,
        "queue": {"running": 0, "waiting": 0, "max": 3},
    }


def test_a_model_that_is_not_installed_fails_health_and_refuses_chat_with_503(
    tmp_path: Path,
) -> None:
    settings = llm_settings(tmp_path, models_dir=tmp_path / "no-models")
    with TestClient(app=create_llm_app(settings)) as client:
        wait_for(lambda: client.get("/health").json()["status"] != "loading")
        health = client.get("/health").json()
        response = client.post("/v1/chat/stream", json=BODY)
    assert health["status"] == "failed"
    assert "model.gguf is missing" in health["error"]
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


# Waiting, busy and disconnects (a real server in a thread) -------------------------------------


def test_a_full_line_is_refused_at_once_with_503_and_retry_after(tmp_path: Path) -> None:
    fake = FakeChatModel(reply=" ".join(["word"] * 400), delay=0.02)
    with running(create_llm_app(llm_settings(tmp_path, max_queue=0), fake)) as base:
        with httpx.stream("POST", f"{base}/v1/chat/stream", json=BODY) as first:
            lines = first.iter_lines()  # kept: dropping it would close the connection
            assert "delta" in json.loads(next(lines))
            refused = httpx.post(f"{base}/v1/chat/stream", json=BODY)
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["retry_after"] == int(refused.headers["retry-after"])


def test_a_client_that_goes_away_stops_its_generation_and_frees_the_slot(tmp_path: Path) -> None:
    fake = FakeChatModel(reply=" ".join(["word"] * 400), delay=0.02)
    with running(create_llm_app(llm_settings(tmp_path), fake)) as base:
        with httpx.stream("POST", f"{base}/v1/chat/stream", json=BODY) as response:
            lines = response.iter_lines()
            next(lines)
            next(lines)
        wait_for(lambda: queue(base)["running"] == 0, seconds=5)
        assert fake.closed_early
        assert fake.produced < 100
        again = httpx.post(f"{base}/v1/chat/stream", json={**BODY, "max_tokens": 3})
        assert events(again.text)[-1]["done"] is True


def test_a_waiting_request_gets_the_slot_when_the_one_before_it_ends(tmp_path: Path) -> None:
    fake = FakeChatModel(reply=" ".join(["word"] * 400), delay=0.02)
    results: list[list[dict[str, Any]]] = []
    with running(create_llm_app(llm_settings(tmp_path, max_queue=1), fake)) as base:
        with httpx.stream("POST", f"{base}/v1/chat/stream", json=BODY) as first:
            lines = first.iter_lines()  # kept: dropping it would close the connection
            next(lines)

            def second() -> None:
                answer = httpx.post(f"{base}/v1/chat/stream", json={**BODY, "max_tokens": 3})
                results.append(events(answer.text))

            waiter = threading.Thread(target=second)
            waiter.start()
            wait_for(lambda: queue(base)["waiting"] == 1)
            assert httpx.post(f"{base}/v1/chat/stream", json=BODY).status_code == 503
        waiter.join(timeout=10)
        assert results[0][-1] == {"done": True, "finish_reason": "length", "tokens": 3}
        assert queue(base) == {"running": 0, "waiting": 0, "max": 1}


def test_a_waiting_client_that_goes_away_gives_its_place_back(tmp_path: Path) -> None:
    fake = FakeChatModel(reply=" ".join(["word"] * 400), delay=0.02)
    with running(create_llm_app(llm_settings(tmp_path, max_queue=1), fake)) as base:
        with httpx.stream("POST", f"{base}/v1/chat/stream", json=BODY) as first:
            lines = first.iter_lines()  # kept: dropping it would close the connection
            next(lines)
            with httpx.stream("POST", f"{base}/v1/chat/stream", json=BODY) as waiting:
                assert waiting.status_code == 200
                wait_for(lambda: queue(base)["waiting"] == 1)
            wait_for(lambda: queue(base)["waiting"] == 0, seconds=5)
        wait_for(lambda: queue(base)["running"] == 0, seconds=5)
        assert len(fake.calls) == 1


# The client ------------------------------------------------------------------------------------


def test_the_client_streams_the_reply_and_takes_the_model_id_from_health(tmp_path: Path) -> None:
    fake = FakeChatModel(reply="Walk every morning.")
    with (
        running(create_llm_app(llm_settings(tmp_path), fake)) as base,
        LlamaServiceClient(base) as model,
    ):
        pieces = list(model.stream(QUESTION, GenerationOptions(max_tokens=16)))
        assert model.model_id == "fake-chat"
    assert "".join(pieces) == "Walk every morning."
    assert fake.calls == [QUESTION]
    assert fake.options == [GenerationOptions(max_tokens=16)]


def test_the_client_raises_model_unavailable_when_the_model_fails_mid_answer(
    tmp_path: Path,
) -> None:
    fake = FakeChatModel(reply="a b c d", fail_after=2, failure=RuntimeError("boom"))
    received: list[str] = []
    with (
        running(create_llm_app(llm_settings(tmp_path), fake)) as base,
        LlamaServiceClient(base) as model,
        pytest.raises(ModelUnavailable, match="failed mid-answer"),
    ):
        received.extend(model.stream(QUESTION, GenerationOptions()))
    assert received == ["a", " b"]


def test_the_client_raises_model_busy_with_the_retry_hint_when_the_line_is_full(
    tmp_path: Path,
) -> None:
    fake = FakeChatModel(reply=" ".join(["word"] * 400), delay=0.02)
    with (
        running(create_llm_app(llm_settings(tmp_path, max_queue=0), fake)) as base,
        LlamaServiceClient(base) as model,
    ):
        first = model.stream(QUESTION, GenerationOptions(max_tokens=400))
        next(first)
        with pytest.raises(ModelBusy) as busy:
            next(model.stream(QUESTION, GenerationOptions()))
        first.close()
    assert busy.value.retry_after >= 1
    assert busy.value.status_code == 503


def test_the_client_turns_a_refused_request_into_invalid(tmp_path: Path) -> None:
    with (
        running(create_llm_app(llm_settings(tmp_path), FakeChatModel())) as base,
        LlamaServiceClient(base) as model,
        pytest.raises(Invalid),
    ):
        next(model.stream(QUESTION, GenerationOptions(max_tokens=100_000)))


def test_closing_the_client_iterator_early_stops_generation_on_the_service(
    tmp_path: Path,
) -> None:
    fake = FakeChatModel(reply=" ".join(["word"] * 400), delay=0.02)
    with (
        running(create_llm_app(llm_settings(tmp_path), fake)) as base,
        LlamaServiceClient(base) as model,
    ):
        pieces = model.stream(QUESTION, GenerationOptions(max_tokens=400))
        assert [next(pieces), next(pieces)] == ["word", " word"]
        pieces.close()
        wait_for(lambda: queue(base)["running"] == 0, seconds=5)
    assert fake.closed_early
    assert fake.produced < 100


def test_a_stream_that_ends_without_its_final_line_is_not_a_whole_answer() -> None:
    def cut_off(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"delta": "Walk"}\n{"delta": " every"}\n')

    with LlamaServiceClient("http://llm.test", transport=httpx.MockTransport(cut_off)) as model:
        pieces: list[str] = []
        with pytest.raises(ModelUnavailable, match="stopped before the answer ended"):
            pieces.extend(model.stream(QUESTION, GenerationOptions()))
    assert pieces == ["Walk", " every"]


def test_the_client_says_plainly_when_no_service_is_listening() -> None:
    with LlamaServiceClient(f"http://127.0.0.1:{free_port()}") as model:
        with pytest.raises(ModelUnavailable, match="not running"):
            next(model.stream(QUESTION, GenerationOptions()))
        with pytest.raises(ModelUnavailable, match="not running"):
            _ = model.model_id


def test_the_packaged_config_documents_the_same_llm_defaults_as_the_settings(
    tmp_path: Path,
) -> None:
    assert load_settings(data_dir=tmp_path / "var").llm == LlmSettings()


# The command -----------------------------------------------------------------------------------


def test_the_service_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="loopback only"):
        serve(llm_settings(tmp_path), host="0.0.0.0")  # noqa: S104 (it must be refused)
    result = run_cli("llm", "--host", "192.168.1.10", "--data-dir", str(tmp_path / "var"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: appliance llm listens on loopback only (127.0.0.1, ::1 or localhost), "
        "not '192.168.1.10'"
    ]


def test_the_command_names_a_missing_model_file_in_one_line(tmp_path: Path) -> None:
    env = {"APPLIANCE_MODELS_DIR": str(tmp_path / "empty")}
    result = run_cli("llm", "--data-dir", str(tmp_path / "var"), env=env)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ")
    assert "model.gguf is missing" in line


# The real demo GGUF, end to end ----------------------------------------------------------------


@contextmanager
def llm_process(tmp_path: Path) -> Iterator[str]:
    """`appliance llm` as systemd would run it: its own process, no database, no init."""
    settings = load_settings(data_dir=tmp_path / "var", models_dir=REPO / "models")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with llm_service(settings, wait_seconds=120) as base:
        yield base
    log = (settings.data_dir / "llm.log").read_text()
    assert "hello" not in log.lower()  # prompts and answers are never logged


@pytest.mark.model
def test_the_demo_gguf_answers_through_the_service_and_stops_when_the_client_leaves(
    tmp_path: Path,
) -> None:
    [entry] = [e for e in load_manifest() if e.name == LLM_MODEL]
    with llm_process(tmp_path) as base, LlamaServiceClient(base) as model:
        health = model.health()
        assert health["sha256"] == entry.files[0].sha256
        assert model.model_id == f"{LLM_MODEL}@sha256:{entry.files[0].sha256[:12]}"

        hello = [ChatMessage("user", "Reply with the single word: hello")]
        text = "".join(model.stream(hello, GenerationOptions(max_tokens=16, temperature=0.0)))
        assert text.strip()
        assert "hello" in text.lower()

        count = [ChatMessage("user", "Count from 1 to 200, one number per line.")]
        pieces = model.stream(count, GenerationOptions(max_tokens=400))
        first_two = [next(pieces), next(pieces)]
        pieces.close()
        assert "".join(first_two).strip()
        wait_for(lambda: queue(base)["running"] == 0, seconds=10)
        again = "".join(model.stream(hello, GenerationOptions(max_tokens=16)))
        assert again == text  # greedy decoding: the same question, the same answer
