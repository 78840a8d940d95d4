"""`appliance bench report`: how long a therapist waits for the AI draft of a whole session,
beside what the same model calls cost in the library alone.

A session of `--minutes` is scripted by cycling the report set's sessions (demo/reports) at
about 150 words a minute, times running on. It is drafted with `draft_report` through
`appliance llm` (its own process, as the report stage reaches it), and, interleaved, the same
map prompts (the same windows) go straight to llama-cpp-python's `create_chat_completion` in
this process (same GGUF, n_ctx, threads, reply cap). The drafter also makes the reduce call
(one summary from the windows') and stops a reply once it loops; the raw path does neither,
so compare tokens as well as seconds. Benchmarks are not tests: nothing is asserted.

Per path: wall seconds (median of --runs), model calls, seconds to the first piece summed over
calls (prompt processing, mostly), generated pieces (about one per token) and pieces/s while
generating. The prompt tokens of each window are counted with the GGUF's own tokenizer and
chat template, to show how the drafter's estimate (characters / 3.5) sizes the windows.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.chat.llm import ChatMessage, ChatModel, GenerationOptions, gguf_file
from appliance.reports.document import Line
from appliance.reports.draft import draft_report
from appliance.reports.evaluate import Scripted, default_set, load_set, served_model
from appliance.reports.prompt import map_messages, split_windows, window_budget
from appliance.settings import Settings

if TYPE_CHECKING:
    from llama_cpp import Llama

WORDS_PER_MINUTE = 150
PATHS = ("raw llama-cpp-python", "draft_report via appliance llm")


def long_transcript(sessions: Sequence[Scripted], minutes: int) -> tuple[Line, ...]:
    """`minutes` of scripted session: the set's sessions one after another (again from the
    first when they run out), each utterance as long as its words take at 150 a minute."""
    target, clock, lines = minutes * 60.0, 0.0, []
    for line in itertools.chain.from_iterable(s.lines for s in itertools.cycle(sessions)):
        if clock >= target:
            break
        seconds = max(len(line.text.split()) * 60.0 / WORDS_PER_MINUTE, 1.0)
        lines.append(Line(round(clock, 2), round(clock + seconds, 2), line.speaker, line.text))
        clock += seconds
    return tuple(lines)


@dataclass
class Call:
    """One model call's clock, in seconds from the moment it was made."""

    started: float = field(default_factory=time.perf_counter)
    first_piece: float | None = None
    last_piece: float | None = None
    pieces: int = 0
    total: float = 0.0

    def piece(self) -> None:
        now = time.perf_counter() - self.started
        self.first_piece = now if self.first_piece is None else self.first_piece
        self.last_piece, self.pieces = now, self.pieces + 1


class Clocked:
    """A `ChatModel` that clocks every call of the model it wraps."""

    def __init__(self, model: ChatModel) -> None:
        self.model = model
        self.calls: list[Call] = []

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def stream(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Iterator[str]:
        call = Call()
        pieces = self.model.stream(messages, options)
        try:
            for piece in pieces:
                if piece:
                    call.piece()
                yield piece
        finally:
            getattr(pieces, "close", lambda: None)()
            call.total = time.perf_counter() - call.started
            self.calls.append(call)


def raw_window(llm: Llama, messages: Sequence[ChatMessage], cap: int) -> Call:
    """The call `LlamaCppChatModel.stream` makes, in this process, drained."""
    from appliance.chat.bench import deltas

    call = Call()
    for piece in deltas(llm, messages, cap):
        if piece:
            call.piece()
    call.total = time.perf_counter() - call.started
    return call


@dataclass
class Run:
    seconds: float
    calls: list[Call]


def summary(path: str, runs: Sequence[Run]) -> dict[str, Any]:
    """Medians over the runs of one path."""

    def median(values: Sequence[float]) -> float | None:
        return round(statistics.median(values), 2) if values else None

    def generating(run: Run) -> float | None:
        spans = [
            (c.pieces - 1, c.last_piece - c.first_piece)
            for c in run.calls
            if c.pieces > 1 and c.first_piece is not None and c.last_piece is not None
        ]
        seconds = sum(s for _, s in spans)
        return sum(n for n, _ in spans) / seconds if seconds > 0 else None

    rates = [rate for run in runs if (rate := generating(run)) is not None]
    return {
        "path": path,
        "seconds": median([r.seconds for r in runs]),
        "calls": median([float(len(r.calls)) for r in runs]),
        "first_piece_s_summed": median(
            [sum(c.first_piece or c.total for c in r.calls) for r in runs]
        ),
        "pieces": median([float(sum(c.pieces for c in r.calls)) for r in runs]),
        "pieces_per_s": median(rates),
    }


def report(settings: Settings, minutes: int, runs: int) -> dict[str, Any]:
    """Script the session, then draft it `runs` times on each path, interleaved."""
    from llama_cpp import Llama

    from appliance.chat.bench import prompt_tokens

    began, load_before = time.perf_counter(), os.getloadavg()[0]
    path, _ = gguf_file(settings)
    lines = long_transcript(load_set(default_set()), minutes)
    max_tokens, n_ctx = settings.reports.max_tokens, settings.llm.n_ctx
    windows = split_windows(lines, window_budget(None, max_tokens, n_ctx))
    prompts = [map_messages(window, None) for window in windows]
    options = settings.llm
    llm = Llama(
        model_path=str(path),
        n_ctx=options.n_ctx,
        n_gpu_layers=options.n_gpu_layers,
        n_threads=options.threads or None,
        verbose=False,
    )
    timed: dict[str, list[Run]] = {name: [] for name in PATHS}
    try:
        with served_model(settings) as client:
            drafted = None

            def raw() -> Run:
                started = time.perf_counter()
                calls = [raw_window(llm, messages, max_tokens) for messages in prompts]
                return Run(time.perf_counter() - started, calls)

            def served() -> Run:
                nonlocal drafted
                clocked = Clocked(client)
                started = time.perf_counter()
                drafted = draft_report(lines, clocked, max_tokens=max_tokens, context_tokens=n_ctx)
                return Run(time.perf_counter() - started, clocked.calls)

            paths = {PATHS[0]: raw, PATHS[1]: served}
            for n in range(runs):  # interleaved, each run in another order: fair to both
                for name in [*paths][n % 2 :] + [*paths][: n % 2]:
                    timed[name].append(paths[name]())
            model_id = client.model_id
        tokens = [prompt_tokens(llm, messages) for messages in prompts]
        n_threads, n_threads_batch = llm.n_threads, llm.n_threads_batch
    finally:
        llm.close()
    counted = [t for t in tokens if t is not None]
    return {
        "model": model_id,
        "gguf": path.name,
        "n_ctx": n_ctx,
        "n_threads": n_threads,
        "n_threads_batch": n_threads_batch,
        "gpu_offload": options.n_gpu_layers != 0,
        "minutes": minutes,
        "utterances": len(lines),
        "words": sum(len(line.text.split()) for line in lines),
        "windows": len(windows),
        "max_tokens": max_tokens,
        "window_prompt_tokens": {
            "max": max(counted) if counted else None,
            "median": round(statistics.median(counted)) if counted else None,
        },
        "runs": runs,
        "rows": [summary(name, timed[name]) for name in PATHS],
        "dropped_notes": drafted.dropped if drafted else None,
        "homework_items": len(drafted.report.homework) if drafted else None,
        "seconds": round(time.perf_counter() - began, 1),
        "cpus": os.cpu_count(),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def _value(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(result: dict[str, Any]) -> str:
    where = "GPU offload" if result["gpu_offload"] else "CPU"
    prompt = result["window_prompt_tokens"]
    lines = [
        f"{result['model']} ({result['gguf']}, n_ctx {result['n_ctx']}, {where}, "
        f"{result['n_threads']} threads, {result['n_threads_batch']} for the prompt)",
        f"a {result['minutes']}-minute session: {result['utterances']} utterances, "
        f"{result['words']} words, {result['windows']} windows (prompt tokens per window: "
        f"median {prompt['median']}, max {prompt['max']}, + {result['max_tokens']} reply "
        f"tokens at most); {result['runs']} run(s) each, interleaved",
        "",
        f"{'median':<34}{'total s':>10}{'calls':>7}{'to first piece s':>18}{'pieces':>8}"
        f"{'pieces/s':>10}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['path']:<34}{_value(row['seconds']):>10}{_value(row['calls'], 0):>7}"
            f"{_value(row['first_piece_s_summed']):>18}{_value(row['pieces'], 0):>8}"
            f"{_value(row['pieces_per_s']):>10}"
        )
    raw, served = (row["seconds"] for row in result["rows"])
    if raw and served:
        lines.append(
            f"the drafter takes {served / 60:.1f} min for the whole report "
            f"({served - raw:+.1f} s beside the raw map calls: HTTP, the reduce call, checks, "
            "replies stopped once they loop)"
        )
    before, after = result["load_average"]
    lines += [
        f"draft: {result['homework_items']} homework items, {result['dropped_notes']} model "
        "notes dropped",
        f"took {result['seconds']} s; {result['cpus']} CPUs, load {before} -> {after}",
    ]
    return "\n".join(lines)
