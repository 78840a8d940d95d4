"""`appliance llm`: the one process that loads the chat model, serving it on loopback HTTP.

Why a process of its own: weights take memory and seconds to load, and a llama.cpp context is
not thread-safe, so one long-lived process owns the model and generates one answer at a time,
while the web process (and any worker) streams from it with `LlamaServiceClient`.

Wire format (NDJSON, one JSON object per line, `application/x-ndjson`):

- `POST /v1/chat/stream` with `{"messages": [{"role", "content"}], "max_tokens", "temperature",
  "stop"}` answers 200 and streams `{"delta": "text"}` lines, then one final line: either
  `{"done": true, "finish_reason": "stop"|"length", "tokens": n}` (`tokens`: pieces streamed,
  one per generated token except where llama.cpp holds back a split character) or
  `{"error": code, "detail": ...}` with code `timeout`, `context_overflow` or
  `generation_failed`. A stream without a final line was cut off.
- Refusals come before any text, as `application/problem+json`: 422 for invalid input, 503 with
  `Retry-After` while the model loads or when the wait line (`[llm] max_queue`) is full.
- `GET /health`: status (`loading`, `ok`, `failed`), model name, id and sha256, GPU offload,
  and the line (`running`, `waiting`, `max`).

A client that goes away stops its generation at the next token and frees the slot. Prompts and
answers are never logged: log lines carry counts, durations and exception types only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from litestar import Litestar, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.exceptions import ValidationException
from litestar.params import JSONBody
from litestar.response import Stream
from pydantic import BaseModel, ConfigDict, Field

from appliance.chat.llm import (
    ChatMessage,
    ChatModel,
    GenerationOptions,
    LlamaCppChatModel,
    PromptTooLong,
    gguf_file,
)
from appliance.modelfiles.manifest import ModelError
from appliance.observability.controllers import MetricsController
from appliance.observability.loads import record_model_load
from appliance.observability.metrics import AppMetrics
from appliance.settings import Settings, SettingsError
from appliance.web.context import RequestContextMiddleware
from appliance.web.errors import EXCEPTION_HANDLERS, problem_response

logger = logging.getLogger("appliance.llm")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
NDJSON = "application/x-ndjson"
MAX_MESSAGES = 64
MAX_CONTENT_CHARS = 32_000  # about 8k tokens, twice the default context window
MAX_BODY_BYTES = 4 * 1024 * 1024


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS)


class StreamRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: list[MessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)  # None: [llm] max_tokens
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stop: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=8
    )


# One generation at a time, a bounded line ------------------------------------------------------


class WaitLine:
    """The single generation slot and its bounded wait line. Event-loop thread only; the
    generation thread hands the slot back with `call_soon_threadsafe`."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self.running = False
        self._waiting: deque[Place] = deque()

    def join(self) -> Place | None:
        """A place holding the slot or waiting for it; None when every place is taken."""
        place = Place(self)
        if not self.running and not self._waiting:
            self.running, place.state = True, "holding"
        elif len(self._waiting) < self.max_waiting:
            self._waiting.append(place)
        else:
            return None
        return place

    def snapshot(self) -> dict[str, int]:
        waiting = len(self._waiting)
        return {"running": int(self.running), "waiting": waiting, "max": self.max_waiting}

    def _hand_on(self) -> None:
        while self._waiting:
            place = self._waiting.popleft()
            if not place.turn_event.done():
                place.state = "holding"
                place.turn_event.set_result(None)
                return
        self.running = False


class Place:
    def __init__(self, line: WaitLine) -> None:
        self.line = line
        self.state: Literal["waiting", "holding", "left"] = "waiting"
        self.turn_event: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def turn(self) -> None:
        """Wait until this place holds the slot. Cancelled (client gone, timeout): leave."""
        try:
            if self.state == "waiting":
                await asyncio.shield(self.turn_event)
        except asyncio.CancelledError:
            self.leave()
            raise

    def leave(self) -> None:
        """Idempotent: give up the place, or hand the slot to the next in line."""
        if self.state == "waiting":
            self.line._waiting.remove(self)
            self.turn_event.cancel()
        elif self.state == "holding":
            self.line._hand_on()
        self.state = "left"


# One request's answer --------------------------------------------------------------------------


class Answer:
    """Runs one generation on a thread of its own and streams its events as NDJSON lines."""

    def __init__(
        self,
        service: LlmService,
        place: Place,
        messages: list[ChatMessage],
        options: GenerationOptions,
    ) -> None:
        self.service, self.place = service, place
        self.messages, self.options = messages, options
        self.deadline = time.monotonic() + service.settings.llm.request_timeout_seconds
        self.stop = threading.Event()
        self.started = False
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def lines(self) -> AsyncIterator[bytes]:
        try:
            try:
                async with asyncio.timeout(max(0.0, self.deadline - time.monotonic())):
                    await self.place.turn()
            except TimeoutError:
                yield _line({"error": "timeout", "detail": "waited too long for the model"})
                return
            self.started = True
            threading.Thread(target=self._generate, name="llm-generation", daemon=True).start()
            while True:
                event = await self.events.get()
                yield _line(event)
                if "delta" not in event:
                    return
        finally:
            self.finish()

    def finish(self) -> None:
        """Idempotent: stop generating (at the next token) or give the place back."""
        self.stop.set()
        if not self.started:
            self.place.leave()

    async def finish_after_response(self) -> None:
        # Also run by the response itself: a client gone before the body started would never
        # start `lines`, whose `finally` would then not run.
        self.finish()

    def _generate(self) -> None:
        started, tokens, outcome = time.monotonic(), 0, "done"
        try:
            pieces = self.service.backend_or_raise().stream(self.messages, self.options)
            try:
                for piece in pieces:
                    if self.stop.is_set():
                        outcome = "cancelled"
                        return
                    if time.monotonic() > self.deadline:
                        outcome = "timeout"
                        self._emit({"error": "timeout", "detail": "the answer took too long"})
                        return
                    if piece:
                        tokens += 1
                        self._emit({"delta": piece})
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
            reason = "length" if tokens >= self.options.max_tokens else "stop"
            self._emit({"done": True, "finish_reason": reason, "tokens": tokens})
        except PromptTooLong as exc:
            outcome = "context_overflow"
            self._emit({"error": "context_overflow", "detail": str(exc)})
        except Exception as exc:
            outcome = "failed"
            logger.error("generation failed", extra={"error": type(exc).__name__})
            self._emit({"error": "generation_failed", "detail": type(exc).__name__})
        finally:
            seconds = time.monotonic() - started
            self._call(self.service.finished, seconds, self.place)
            logger.info(
                "generation",
                extra={"outcome": outcome, "tokens": tokens, "seconds": round(seconds, 3)},
            )

    def _emit(self, event: dict[str, Any]) -> None:
        self._call(self.events.put_nowait, event)

    def _call(self, fn: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the service is stopping
            self.loop.call_soon_threadsafe(fn, *args)


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode() + b"\n"


# The service -----------------------------------------------------------------------------------


class LlmService:
    """What the app holds: the settings, the model (once loaded) and the wait line."""

    def __init__(self, settings: Settings, backend: ChatModel | None) -> None:
        self.settings = settings
        self.backend = backend
        self.status: Literal["loading", "ok", "failed"] = "ok" if backend else "loading"
        self.error: str | None = None
        self.line = WaitLine(settings.llm.max_queue)
        self.average_seconds = 5.0  # of recent generations: the Retry-After estimate

    def load(self) -> None:
        """Load the configured model (on a thread, so health answers `loading` meanwhile)."""
        started = time.monotonic()
        try:
            self.backend = LlamaCppChatModel(self.settings)
        except Exception as exc:
            self.status = "failed"
            self.error = str(exc).splitlines()[0] if isinstance(exc, ModelError) else None
            self.error = self.error or f"loading the model failed ({type(exc).__name__})"
            logger.error("model load failed", extra={"error": type(exc).__name__})
            return
        self.status = "ok"
        record_model_load(self.settings.llm.model, time.monotonic() - started)  # logs it too

    def backend_or_raise(self) -> ChatModel:
        if self.backend is None:
            raise RuntimeError("no model loaded")
        return self.backend

    def finished(self, seconds: float, place: Place) -> None:
        self.average_seconds = 0.8 * self.average_seconds + 0.2 * seconds
        place.leave()

    def retry_after(self) -> int:
        ahead = self.line.snapshot()["waiting"] + 1
        return max(1, min(300, round(self.average_seconds * ahead)))

    def health(self) -> dict[str, Any]:
        backend = self.backend
        return {
            "status": self.status,
            "model": self.settings.llm.model,
            "model_id": backend.model_id if backend and self.status == "ok" else None,
            "sha256": getattr(backend, "sha256", None),
            "n_ctx": self.settings.llm.n_ctx,
            "n_gpu_layers": self.settings.llm.n_gpu_layers,
            "gpu_offload": getattr(backend, "gpu_offload", None),
            "queue": self.line.snapshot(),
            **({"error": self.error} if self.error else {}),
        }


@get("/health", summary="Model status and the wait line", sync_to_thread=False)
def health(state: State) -> dict[str, Any]:
    service: LlmService = state.llm
    return service.health()


@post("/v1/chat/stream", summary="Stream a chat answer as NDJSON", status_code=200)
async def chat_stream(
    request: Request[Any, Any, Any], data: JSONBody[StreamRequest], state: State
) -> Response[Any]:
    service: LlmService = state.llm
    cap = service.settings.llm.max_tokens
    if data.max_tokens is not None and data.max_tokens > cap:
        raise ValidationException(
            "Validation failed", extra=[{"key": "max_tokens", "message": f"at most {cap}"}]
        )
    if service.status != "ok":
        detail = "the model is still loading" if service.status == "loading" else service.error
        return _busy(request, detail or "the model is unavailable", 5)
    place = service.line.join()
    if place is None:
        return _busy(request, "the model is busy; try again shortly", service.retry_after())
    options = GenerationOptions(
        max_tokens=data.max_tokens or cap, temperature=data.temperature, stop=tuple(data.stop)
    )
    messages = [ChatMessage(m.role, m.content) for m in data.messages]
    answer = Answer(service, place, messages, options)
    return Stream(
        answer.lines(),
        media_type=NDJSON,
        background=BackgroundTask(answer.finish_after_response),
    )


def _busy(request: Request[Any, Any, Any], detail: str, retry_after: int) -> Response[Any]:
    return problem_response(
        request,
        503,
        detail,
        extra={"retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def create_llm_app(settings: Settings, backend: ChatModel | None = None) -> Litestar:
    """The service app. Without `backend` it loads the configured GGUF on a thread at startup
    (health says `loading` until then); tests pass a fake `ChatModel` instead."""
    service = LlmService(settings, backend)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if service.backend is None:
            threading.Thread(target=service.load, name="llm-load", daemon=True).start()
        yield
        close = getattr(service.backend, "close", None)
        if close is not None and not service.line.running:
            close()

    return Litestar(
        route_handlers=[health, chat_stream, MetricsController],
        middleware=[RequestContextMiddleware()],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        state=State(
            {
                "llm": service,
                "settings": settings,
                "metrics": AppMetrics(settings),  # /metrics: its model load time, GPU memory
                "database": None,
            }
        ),
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        # Logging is configured once per process by `serve` (JSON, PHI-safe); Litestar's
        # default config would replace those handlers at startup.
        logging_config=None,
    )


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the service until SIGTERM. Loopback only: it has no authentication of its own."""
    host = host or settings.llm.host
    if host not in LOOPBACK_HOSTS:
        raise SettingsError(
            f"appliance llm listens on loopback only (127.0.0.1, ::1 or localhost), not {host!r}"
        )
    gguf_file(settings)  # a missing model is a one-line error now, not a failed load later
    import uvicorn

    from appliance.observability.process import start_service_process

    start_service_process(settings)
    uvicorn.run(
        create_llm_app(settings),
        host=host,
        port=port or settings.llm.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
