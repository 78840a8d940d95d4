"""The `ChatModel` protocol and its two backends: `LlamaServiceClient`, which the web process
uses to reach `appliance llm`, and `LlamaCppChatModel`, which only that service loads.

The web process never loads weights: it streams from the loopback LLM service over HTTP
(`appliance/chat/llm_service.py` describes the wire format); llama_cpp is imported only when a
`LlamaCppChatModel` is built. The protocol is deliberately tiny (messages in, text pieces out)
so the chat domain can run on a deterministic fake in tests and on any local backend.

A half answer must never pass for a whole one: every way a stream can end early other than the
caller closing it (the service dying, a timeout, an error line) raises `ModelUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx

from appliance.errors import DomainError, Invalid
from appliance.modelfiles.manifest import ModelError, load_manifest

if TYPE_CHECKING:
    from appliance.settings import Settings

Role = Literal["system", "user", "assistant"]
STREAM_PATH = "/v1/chat/stream"
HEALTH_PATH = "/health"

logger = logging.getLogger("appliance.llm")


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 256
    # 0: greedy decoding, so the same question over the same passages gets the same answer.
    temperature: float = 0.0
    stop: tuple[str, ...] = ()


class ChatModel(Protocol):
    """A chat model: yields the reply's text pieces as they are generated.

    Closing the iterator early stops generation. Failures raise `ModelBusy` or
    `ModelUnavailable` (or `Invalid` for a request the model cannot take), never a silent stop.
    """

    @property
    def model_id(self) -> str:
        """The model's name and file hash (for the audit trail)."""
        ...

    def stream(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Iterator[str]: ...


class ModelBusy(DomainError):
    """The LLM service is saturated (its wait line is full) or still loading its model."""

    status_code = 503
    title = "Service Unavailable"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnavailable(DomainError):
    """The LLM service cannot be reached, or it stopped before the answer was complete."""

    status_code = 503
    title = "Service Unavailable"


class PromptTooLong(Invalid):
    """The conversation does not fit the model's context window; the caller must shorten it."""


def encode_request(messages: Sequence[ChatMessage], options: GenerationOptions) -> dict[str, Any]:
    """The JSON body of `POST /v1/chat/stream`."""
    return {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "stop": list(options.stop),
    }


class LlamaServiceClient:
    """`ChatModel` backed by the loopback `appliance llm` service (NDJSON over HTTP).

    One instance per process: it keeps a small connection pool. `trust_env=False` so that no
    proxy setting can route prompts (PHI) anywhere but the loopback interface.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        # The service ends a request after its own request_timeout_seconds (queue wait
        # included) with an error line; the client waits a little longer than that so it
        # hears the reason instead of timing out first.
        timeout = httpx.Timeout(timeout_seconds + 10.0, connect=5.0)
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, trust_env=False, transport=transport
        )
        self._model_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaServiceClient:
        options = settings.llm
        host = f"[{options.host}]" if ":" in options.host else options.host
        return cls(f"http://{host}:{options.port}", timeout_seconds=options.request_timeout_seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LlamaServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        """The service's `/health` document (raises `ModelUnavailable` if it cannot answer)."""
        try:
            response = self._http.get(HEALTH_PATH)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ModelUnavailable(_unreachable(exc)) from None
        return body

    @property
    def model_id(self) -> str:
        """The served model's id (name and file hash), asked for once, when first needed."""
        if self._model_id is None:
            health = self.health()
            if health.get("status") == "loading":
                raise ModelBusy("the language model is still loading", retry_after=5)
            if health.get("status") != "ok" or not health.get("model_id"):
                reason = health.get("error") or "it reports no model"
                raise ModelUnavailable(f"the language model service cannot answer: {reason}")
            self._model_id = str(health["model_id"])
        return self._model_id

    def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
        """Yield the reply's pieces. Nothing is sent until the first `next()`; closing the
        iterator closes the HTTP stream, and the service stops generating at the next token."""
        body = encode_request(messages, options)
        try:
            with self._http.stream("POST", STREAM_PATH, json=body) as response:
                _raise_for_refusal(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    event = _parse_event(line)
                    if "delta" in event:
                        yield str(event["delta"])
                    elif event.get("done"):
                        return
                    elif "error" in event:
                        _raise_for_error_line(event)
            raise ModelUnavailable("the language model service stopped before the answer ended")
        except httpx.HTTPError as exc:
            raise ModelUnavailable(_unreachable(exc)) from None


def gguf_file(settings: Settings) -> tuple[Path, str | None]:
    """The configured model's GGUF file and the sha256 the manifest lists for it (None for a
    model the manifest does not know); a one-line `ModelError` when it is not installed."""
    name = settings.llm.model
    listed = {entry.name: entry for entry in load_manifest()}.get(name)
    ggufs = [f for f in listed.files if f.path.endswith(".gguf")] if listed else []
    path = settings.resolved_models_dir / name / (ggufs[0].path if ggufs else "model.gguf")
    if not path.is_file():
        raise ModelError(f"{path} is missing; run: appliance models install --profile demo")
    return path, ggufs[0].sha256 if ggufs else None


class LlamaCppChatModel:
    """The configured GGUF loaded in this process with llama-cpp-python (imported here only).
    Only `appliance llm` builds one; it is not thread-safe, so the service lets one generation
    at a time use it."""

    def __init__(self, settings: Settings) -> None:
        options = settings.llm
        path, expected = gguf_file(settings)
        # Hashed once at load: health reports exactly which weights answer, and a file that
        # differs from the manifest is refused rather than served.
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(4 * 1024 * 1024):
                digest.update(block)
        self.sha256 = digest.hexdigest()
        if expected not in (None, self.sha256):
            raise ModelError(f"{path} does not match its sha256 in the manifest; reinstall it")
        self.model_id = f"{options.model}@sha256:{self.sha256[:12]}"
        from llama_cpp import Llama, llama_supports_gpu_offload

        self.gpu_offload = bool(llama_supports_gpu_offload())
        if options.n_gpu_layers != 0 and not self.gpu_offload:
            logger.warning("n_gpu_layers is set but this llama.cpp build has no GPU offload")
        self._llm = Llama(
            model_path=str(path),
            n_ctx=options.n_ctx,
            n_gpu_layers=options.n_gpu_layers,
            n_threads=options.threads or None,
            verbose=False,
        )

    def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
        # llama_cpp types each role's message separately; ours are already checked.
        payload: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        chunks: Any = self._llm.create_chat_completion(
            messages=payload,
            stream=True,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            stop=list(options.stop),
        )
        try:
            for chunk in chunks:
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    yield text
        except ValueError as exc:
            if "context window" in str(exc):  # llama.cpp's message carries token counts only
                raise PromptTooLong(str(exc)) from None
            raise
        finally:
            chunks.close()  # stops llama.cpp at once when the caller closes us early

    def close(self) -> None:
        self._llm.close()


def _unreachable(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "the language model service is not running (connection refused); start appliance llm"
    if isinstance(exc, httpx.TimeoutException):
        return "the language model service did not answer in time"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"the language model service answered {exc.response.status_code}"
    return f"the language model service failed ({type(exc).__name__})"


def _raise_for_refusal(response: httpx.Response) -> None:
    """Map a refused request (before any text) to the appliance's errors."""
    if response.status_code == 200:
        return
    response.read()
    try:
        detail = str(response.json().get("detail") or "")
    except ValueError:
        detail = ""
    if response.status_code == 503:
        try:
            retry_after = int(response.headers.get("retry-after", "5"))
        except ValueError:
            retry_after = 5
        raise ModelBusy(detail or "the language model is busy", retry_after=retry_after)
    if response.status_code == 422:
        raise Invalid(detail or "the language model service refused the request as invalid")
    raise ModelUnavailable(f"the language model service answered {response.status_code}")


def _parse_event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        raise ModelUnavailable("the language model service sent an unreadable line") from None
    if not isinstance(event, dict):
        raise ModelUnavailable("the language model service sent an unreadable line")
    return event


def _raise_for_error_line(event: dict[str, Any]) -> None:
    code = str(event.get("error"))
    detail = str(event.get("detail") or code)
    if code == "context_overflow":
        raise PromptTooLong(detail)
    if code == "timeout":
        raise ModelUnavailable(f"the language model stopped: {detail}")
    raise ModelUnavailable(f"the language model failed mid-answer: {detail}")
