"""`appliance bench chat`: what a patient waits for, beside what the model alone costs.

The messages the appliance builds for one chat-set question (real passages, scratch appliance)
go to llama-cpp-python directly (same GGUF, n_ctx, threads), to `appliance llm` over loopback
HTTP, and through `chat.service.respond()` (rate limit, safety, consent, retrieval, model,
grounding, sealing, audit), interleaved, so what each layer adds reads off by subtraction.
Then `--concurrent` patients ask at once: one answer is generated at a time and up to
`[llm] max_queue` wait, so the figures show the wait, the 503s and the answers past the
request timeout.

llama.cpp keeps the last prompt in its KV cache, and the same prompt again costs nearly
nothing, so each timed answer follows another question with the same instructions, as in a
clinic: the system prompt is cached, passages and question are not. Pieces are the streamed
text pieces, one per token; pieces/s counts those after the first over the time from first to
last. Every path is capped at `--max-tokens`. Benchmarks are not tests: nothing is asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from appliance.audit.service import Actor
from appliance.chat.evaluate import ANSWERED, ChatQuestion, default_chat_set, load_chat_set
from appliance.chat.llm import (
    ChatMessage,
    ChatModel,
    GenerationOptions,
    LlamaServiceClient,
    ModelBusy,
    ModelUnavailable,
    gguf_file,
)
from appliance.chat.prompt import OPEN, SYSTEM, build_messages
from appliance.chat.schemas import ChatResponse
from appliance.chat.service import ChatContext, Delta, respond, unknown_names
from appliance.crypto.keystore import KeyStore
from appliance.errors import Invalid
from appliance.retrieval.evaluate import default_set, load_into, load_set, scratch_appliance
from appliance.retrieval.search import search
from appliance.settings import INSTANCE_CONFIG_NAME, Settings

if TYPE_CHECKING:
    from llama_cpp import Llama

PATIENT = Actor(role="patient", user_agent="appliance bench chat")
# Asked before each timed answer: the same instructions, another question.
OTHER_QUESTION = [ChatMessage("system", SYSTEM), ChatMessage("user", "Hello.")]


@dataclass
class Timing:
    """One answer's clock, in seconds from the moment it was asked."""

    started: float = field(default_factory=time.perf_counter)
    first_piece: float | None = None
    last_piece: float | None = None
    pieces: int = 0
    first_answer: float | None = None  # whole path: the first verified sentence (a Delta)
    total: float | None = None
    sent: float | None = None  # whole path: when the appliance asked the model
    outcome: str = "answered"
    retry_after: int | None = None

    def now(self) -> float:
        return time.perf_counter() - self.started

    def piece(self) -> None:
        now = self.now()
        self.first_piece = now if self.first_piece is None else self.first_piece
        self.last_piece, self.pieces = now, self.pieces + 1

    def rate(self) -> float | None:
        if self.pieces < 2 or self.first_piece is None or self.last_piece is None:
            return None
        return (self.pieces - 1) / max(self.last_piece - self.first_piece, 1e-9)


class Metered:
    """The service client as `respond()` sees it: clocks each piece as it arrives, caps
    max_tokens, and keeps the messages, so the bench can check every path got the same."""

    def __init__(self, model: ChatModel, cap: int, timing: Timing) -> None:
        self.model, self.cap, self.timing = model, cap, timing
        self.messages: list[ChatMessage] | None = None
        self.asked_max_tokens: int | None = None

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
        self.messages, self.asked_max_tokens = list(messages), options.max_tokens
        self.timing.sent = self.timing.now()
        capped = replace(options, max_tokens=min(options.max_tokens, self.cap))
        pieces = self.model.stream(messages, capped)
        try:
            for piece in pieces:
                self.timing.piece()
                yield piece
        finally:
            getattr(pieces, "close", lambda: None)()


def clocked(timing: Timing, pieces: Iterator[str]) -> Timing:
    """Drain a stream of text pieces, clocking the non-empty ones."""
    for piece in pieces:
        if piece:
            timing.piece()
    timing.total = timing.now()
    return timing


def deltas(llm: Llama, messages: Sequence[ChatMessage], cap: int) -> Iterator[str]:
    """The call `LlamaCppChatModel.stream` makes, made on first `next()`."""
    payload: Any = [{"role": m.role, "content": m.content} for m in messages]
    chunks: Any = llm.create_chat_completion(
        payload, stream=True, max_tokens=cap, temperature=0.0, stop=[]
    )
    for chunk in chunks:
        yield chunk["choices"][0]["delta"].get("content") or ""


def raw_answer(llm: Llama, messages: Sequence[ChatMessage], cap: int) -> Timing:
    """llama-cpp-python in this process, after another question."""
    "".join(deltas(llm, OTHER_QUESTION, 1))
    return clocked(Timing(), deltas(llm, messages, cap))


def service_answer(client: LlamaServiceClient, messages: Sequence[ChatMessage], cap: int) -> Timing:
    """The same messages to `appliance llm` over loopback HTTP, after another question."""
    "".join(client.stream(OTHER_QUESTION, GenerationOptions(max_tokens=1)))
    return clocked(Timing(), client.stream(messages, GenerationOptions(max_tokens=cap)))


@dataclass(frozen=True)
class Clinic:
    """The scratch appliance: what `respond()` needs besides a database session of its own."""

    settings: Settings
    store: KeyStore
    engine: Any
    ids: dict[str, Any]
    search_options: dict[str, Any]
    client: LlamaServiceClient
    cap: int

    def ask(self, question: ChatQuestion, started: float = 0.0) -> tuple[Timing, Metered]:
        """One question through `respond()`, as `POST /api/v1/chat/stream` runs it."""
        timing = Timing(started or time.perf_counter())
        model = Metered(self.client, self.cap, timing)
        with Session(self.engine, expire_on_commit=False) as session:
            context = ChatContext(
                session, self.store, self.settings, PATIENT, model, self.search_options
            )
            try:
                for event in respond(context, self.ids[question.patient], question.text):
                    if isinstance(event, Delta) and timing.first_answer is None:
                        timing.first_answer = timing.now()
                    elif isinstance(event, ChatResponse):
                        timing.outcome = event.reason or "answered"
            except ModelBusy as exc:
                timing.outcome, timing.retry_after = "busy", exc.retry_after
            except ModelUnavailable as exc:  # "stopped:" is how the client words a timeout
                timing.outcome = "timed_out" if "stopped:" in str(exc) else f"unavailable ({exc})"
        timing.total = timing.now()
        return timing, model

    def crowd(self, asked: Sequence[ChatQuestion], count: int) -> dict[str, Any] | None:
        """`count` patients press "ask" at the same moment, each with another question."""
        if count == 0:
            return None
        pressed: list[float] = []  # one moment for all: their clocks compare
        gate = threading.Barrier(count, action=lambda: pressed.append(time.perf_counter()))
        timings = [Timing(outcome="not_run") for _ in range(count)]

        def one(n: int) -> None:
            gate.wait()
            try:
                timings[n], _ = self.ask(asked[n % len(asked)], pressed[0])
            except Exception as exc:  # a figure, not a crash: the others still count
                timings[n].outcome = f"error {type(exc).__name__}"

        threads = [threading.Thread(target=one, args=(n,), daemon=True) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Pairs served out of the order sent, and how far apart those were sent (the client
        # cannot see when a request reached the service).
        served = [(t.sent or 0.0, t.first_piece) for t in timings if t.first_piece is not None]
        swapped = [b[0] - a[0] for a in served for b in served if a[0] < b[0] and a[1] > b[1]]
        outcomes = Counter(t.outcome for t in timings)
        return {
            **row("whole path, all but the busy", [t for t in timings if t.outcome != "busy"]),
            "patients": count,
            "outcomes": dict(sorted(outcomes.items())),
            "busy_503": outcomes["busy"],
            "retry_after_s": sorted(t.retry_after for t in timings if t.retry_after is not None),
            "out_of_order_pairs": len(swapped),
            "out_of_order_sent_within_s": round(max(swapped), 3) if swapped else None,
            "max_queue": self.settings.llm.max_queue,
            "request_timeout_s": self.settings.llm.request_timeout_seconds,
        }


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """Median and p95 (inclusive quantiles; the largest value when there are few)."""
    got = sorted(v for v in values if v is not None)
    if not got:
        return {"median": None, "p95": None}
    p95 = statistics.quantiles(got, n=20, method="inclusive")[18] if len(got) > 1 else got[0]
    return {"median": round(statistics.median(got), 3), "p95": round(p95, 3)}


def row(path: str, timings: Sequence[Timing]) -> dict[str, Any]:
    return {
        "path": path,
        "first_piece_s": spread([t.first_piece for t in timings]),
        "first_answer_s": spread([t.first_answer for t in timings]),
        "total_s": spread([t.total for t in timings]),
        "pieces_per_s": spread([t.rate() for t in timings]),
        "pieces": spread([float(t.pieces) for t in timings]),
        "outcomes": sorted({t.outcome for t in timings}),
    }


def prompt_tokens(llm: Llama, messages: Sequence[ChatMessage]) -> int | None:
    """The prompt's tokens, rendered with the GGUF's chat template as llama-cpp-python does."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None

    def text(token: int) -> str:
        return "" if token == -1 else llm.detokenize([token], special=True).decode(errors="ignore")

    formatter = Jinja2ChatFormatter(template, text(llm.token_eos()), text(llm.token_bos()))
    payload: Any = [{"role": m.role, "content": m.content} for m in messages]
    prompt = formatter(messages=payload).prompt
    return len(llm.tokenize(prompt.encode(), add_bos=False, special=True))


def reaching_model(
    clinic: Clinic, session: Session, asked: Sequence[ChatQuestion]
) -> list[tuple[ChatQuestion, list[ChatMessage]]]:
    """The (factual, temporal) questions with passages and no unknown name, which `respond()`
    puts to the model, each with the messages it builds (a new conversation: no history)."""
    reaching = []
    for q in asked:
        patient_id, options = clinic.ids[q.patient], clinic.search_options
        found = search(session, clinic.store, clinic.settings, patient_id, q.text, **options)
        session.commit()
        if found.hits and not unknown_names(q.text, found.hits):
            reaching.append((q, build_messages(q.text, found.hits)))
    if not reaching:
        raise RuntimeError("bench chat: no question of the chat set reaches the model")
    return reaching


def report(settings: Settings, runs: int, concurrent: int, max_tokens: int) -> dict[str, Any]:
    """Load the chat set's sessions into a scratch appliance, then time every path."""
    if max_tokens > settings.llm.max_tokens:
        raise Invalid(f"--max-tokens is at most [llm] max_tokens ({settings.llm.max_tokens})")
    from llama_cpp import Llama

    from appliance.demo_chat import llm_service

    began, load_before = time.perf_counter(), os.getloadavg()[0]
    path, _ = gguf_file(settings)
    data = load_set(default_set())
    asked = [q for q in load_chat_set(default_chat_set(), data) if q.kind in ANSWERED]
    options = settings.llm
    with scratch_appliance(settings) as (scratch, session, store):
        # Every timed answer is a patient turn: the hourly limit must not end the run.
        chat = scratch.chat.model_copy(update={"questions_per_hour": 10000})
        scratch = scratch.model_copy(update={"chat": chat, "llm": options})
        # `appliance llm` reads its settings from its data dir: give it this [llm] table.
        table = "".join(f"{k} = {json.dumps(v)}\n" for k, v in options.model_dump().items())
        (scratch.data_dir / INSTANCE_CONFIG_NAME).write_text(f"[llm]\n{table}")
        ids = load_into(session, store, scratch, data)
        llm = Llama(
            model_path=str(path),
            n_ctx=options.n_ctx,
            n_gpu_layers=options.n_gpu_layers,
            n_threads=options.threads or None,
            verbose=False,
        )
        try:
            timeout = options.request_timeout_seconds  # as `LlamaServiceClient.from_settings`
            with (
                llm_service(scratch) as base,
                LlamaServiceClient(base, timeout_seconds=timeout) as client,
            ):
                today = {"today": data["today"]}
                engine = session.get_bind()
                clinic = Clinic(scratch, store, engine, ids, today, client, max_tokens)
                reaching = reaching_model(clinic, session, asked)
                question, messages = reaching[0]
                asks: list[int | None] = []

                def whole() -> Timing:
                    "".join(client.stream(OTHER_QUESTION, GenerationOptions(max_tokens=1)))
                    timing, model = clinic.ask(question)
                    if model.messages != messages:
                        raise RuntimeError(f"bench chat: another prompt ({timing.outcome})")
                    asks.append(model.asked_max_tokens)
                    return timing

                paths = {
                    "raw llama-cpp-python": lambda: raw_answer(llm, messages, max_tokens),
                    "appliance llm (HTTP)": lambda: service_answer(client, messages, max_tokens),
                    "whole path respond()": whole,
                }
                timed: dict[str, list[Timing]] = {name: [] for name in paths}
                for n in range(runs):  # interleaved, each run in another order: fair to all
                    for name in [*paths][n % 3 :] + [*paths][: n % 3]:
                        timed[name].append(paths[name]())
                "".join(client.stream(OTHER_QUESTION, GenerationOptions(max_tokens=1)))
                crowd = clinic.crowd([q for q, _ in reaching], concurrent)
                model_id, health = client.model_id, client.health()
            tokens = prompt_tokens(llm, messages)
        finally:
            llm.close()
    return {
        "model": model_id,
        "gguf": path.name,
        "n_ctx": options.n_ctx,
        "gpu_offload": bool(health.get("gpu_offload")) and options.n_gpu_layers != 0,
        "n_threads": llm.n_threads,  # what llama-cpp-python made of [llm] threads
        "n_threads_batch": llm.n_threads_batch,
        "question": question.text,
        "passages": messages[-1].content.count(OPEN),
        "prompt_tokens": tokens,
        "runs": runs,
        "max_tokens": max_tokens,
        "chat_path_asks_max_tokens": asks[0],
        "rows": [row(name, timings) for name, timings in timed.items()],
        "concurrency": crowd,
        "seconds": round(time.perf_counter() - began, 1),
        "cpus": os.cpu_count(),  # other work on these cores slows every path alike
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _pair(figures: dict[str, float | None], digits: int = 2) -> str:
    median, p95 = figures["median"], figures["p95"]
    return "-" if median is None or p95 is None else f"{median:.{digits}f} / {p95:.{digits}f}"


def render(result: dict[str, Any]) -> str:
    """The three paths side by side (median / p95), what each layer adds, then the crowd."""
    where = "GPU offload" if result["gpu_offload"] else "CPU"
    lines = [
        f"{result['model']} ({result['gguf']}, n_ctx {result['n_ctx']}, {where}, "
        f"{result['n_threads']} threads, {result['n_threads_batch']} for the prompt)",
        f"question {result['question']!r}: {result['passages']} passages, "
        f"{result['prompt_tokens']} prompt tokens; answers capped at {result['max_tokens']} "
        f"tokens (the chat path asks {result['chat_path_asks_max_tokens']}); "
        f"{result['runs']} runs each, interleaved in turn",
        "",
        f"{'median / p95':<24}{'first piece s':>16}{'first answer s':>16}{'total s':>16}"
        f"{'pieces/s':>14}{'pieces':>8}",
    ]
    for r in result["rows"]:
        pieces = r["pieces"]["median"]
        lines.append(
            f"{r['path']:<24}{_pair(r['first_piece_s']):>16}{_pair(r['first_answer_s']):>16}"
            f"{_pair(r['total_s']):>16}{_pair(r['pieces_per_s'], 1):>14}"
            f"{'-' if pieces is None else f'{pieces:.0f}':>8}"
        )
    raw, service, whole = (r["first_piece_s"]["median"] for r in result["rows"])
    answer = result["rows"][2]["first_answer_s"]["median"]
    if None not in (raw, service, whole):
        later = f"; the first verified sentence {answer - whole:+.2f} s" if answer else ""
        lines.append(
            f"first piece: HTTP adds {service - raw:+.2f} s to the raw call, the appliance's "
            f"own steps (consent, retrieval, database) {whole - service:+.2f} s more{later}"
        )
    crowd = result["concurrency"]
    if crowd:
        outcomes = ", ".join(f"{kind} {n}" for kind, n in crowd["outcomes"].items())
        outcomes = outcomes.replace("busy", "busy (503)")
        retry = f" (Retry-After {crowd['retry_after_s']} s)" if crowd["retry_after_s"] else ""
        swaps, within = crowd["out_of_order_pairs"], crowd["out_of_order_sent_within_s"]
        order = f"{swaps} pairs served out of the order sent" + (
            f" (sent at most {within:.3f} s apart)" if swaps else ": first come, first served"
        )
        lines += [
            "",
            f"{crowd['patients']} patients at once, whole path (one answer at a time, "
            f"max_queue {crowd['max_queue']}, request timeout {crowd['request_timeout_s']} s):",
            f"  {outcomes}{retry}; {order}",
            f"  p50 / p95: first piece {_pair(crowd['first_piece_s'])} s, first answer "
            f"{_pair(crowd['first_answer_s'])} s, total {_pair(crowd['total_s'])} s (not busy)",
        ]
    before, after = result["load_average"]
    lines += ["", f"took {result['seconds']} s; {result['cpus']} CPUs, load {before} -> {after}"]
    return "\n".join(lines)
