"""`appliance bench chat` at a tiny size with the real demo GGUF: the command runs end to end
(scratch appliance, raw llama-cpp-python, `appliance llm` in its own process, the whole patient
path, patients at once), every path gets the same prompt and the same token cap, and the
figures are whole and consistent. Speeds are not asserted: a benchmark is not a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance.chat.bench import Metered, Timing, render, spread
from appliance.chat.llm import ChatMessage, GenerationOptions
from tests.chat_fakes import FakeChatModel
from tests.conftest import run_cli

PATHS = ["raw llama-cpp-python", "appliance llm (HTTP)", "whole path respond()"]
TINY = ("--runs", "1", "--concurrent", "2", "--max-tokens", "4")


def test_spread_quotes_the_median_and_p95_and_skips_what_was_not_measured() -> None:
    assert spread([float(n) for n in range(1, 21)]) == {"median": 10.5, "p95": 19.05}
    assert spread([3.0, None]) == {"median": 3.0, "p95": 3.0}
    assert spread([None]) == {"median": None, "p95": None}


def test_metered_caps_the_answer_clocks_every_piece_and_keeps_the_prompt() -> None:
    model = FakeChatModel(reply="one two three four five six")
    metered = Metered(model, cap=4, timing=Timing())
    asked = [ChatMessage("user", "hello")]
    pieces = list(metered.stream(asked, GenerationOptions(max_tokens=256)))
    assert pieces == ["one", " two", " three", " four"]
    assert model.options[0].max_tokens == 4
    assert (metered.messages, metered.asked_max_tokens) == (asked, 256)
    timing = metered.timing
    assert timing.pieces == 4
    assert timing.first_piece is not None
    assert timing.last_piece is not None
    assert 0 <= timing.first_piece <= timing.last_piece
    assert (timing.rate() or 0) > 0


def test_bench_chat_refuses_a_cap_above_the_service_limit_with_one_line() -> None:
    result = run_cli("bench", "chat", "--max-tokens", "100000")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: --max-tokens is at most [llm] max_tokens")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.timeout(900)
def test_bench_chat_times_every_path_with_one_prompt_and_a_crowd(tmp_path: Path) -> None:
    # One passage instead of five keeps the prompt (and the run) short on two CPU cores.
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_DATA_DIR": str(tmp_path), "APPLIANCE_RETRIEVAL__RESULTS": "1"})
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "bench", "chat", *TINY, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=840,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured: dict[str, Any] = json.loads(done.stdout)
    assert (measured["runs"], measured["max_tokens"], measured["passages"]) == (1, 4, 1)
    assert measured["chat_path_asks_max_tokens"] == 256
    assert measured["model"].startswith("qwen2.5-0.5b-instruct-q4@sha256:")
    assert measured["prompt_tokens"] > 50
    assert measured["n_threads"] >= 1
    rows = {row["path"]: row for row in measured["rows"]}
    assert list(rows) == PATHS
    for path, row in rows.items():
        first, total = row["first_piece_s"]["median"], row["total_s"]["median"]
        assert first is not None, path
        assert first > 0, path
        assert total >= first, path
        assert row["first_piece_s"]["p95"] >= first, path
        assert 1 <= row["pieces"]["median"] <= 4, path  # the cap holds on every path
    whole = rows["whole path respond()"]
    assert not any(o in whole["outcomes"] for o in ("busy", "timed_out", "unavailable"))
    answered = whole["first_answer_s"]["median"]
    if answered is not None:  # a sentence the passages support (or a quote of them)
        assert whole["first_piece_s"]["median"] <= answered <= whole["total_s"]["median"]
    for path in PATHS[:2]:
        assert rows[path]["first_answer_s"]["median"] is None  # no grounding off the path

    crowd = measured["concurrency"]
    assert crowd["patients"] == 2
    assert sum(crowd["outcomes"].values()) == 2
    assert set(crowd["outcomes"]) <= {"answered", "not_found"}, crowd["outcomes"]
    assert crowd["busy_503"] == 0  # two patients fit a line of eight
    assert crowd["out_of_order_pairs"] >= 0  # near-ties may swap: a figure, not asserted
    assert 0 < crowd["first_piece_s"]["median"] <= crowd["total_s"]["p95"]

    table = render(measured).splitlines()
    for path in PATHS:
        assert any(line.startswith(path) for line in table), path
    assert any(line.startswith("2 patients at once") for line in table)
