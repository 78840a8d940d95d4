"""`appliance bench report`: the scripted long session, the clock around each model call, and
the command end to end at a tiny size with the real demo GGUF (raw llama-cpp-python and
`appliance llm` side by side). Speeds are not asserted: a benchmark is not a test."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance.chat.llm import ChatMessage, GenerationOptions
from appliance.reports.bench import PATHS, Clocked, long_transcript, render
from appliance.reports.evaluate import load_set
from tests.chat_fakes import FakeChatModel
from tests.conftest import REPO

SET = REPO / "demo" / "reports" / "set.toml"


def test_the_scripted_session_runs_on_for_the_minutes_asked_at_about_150_words_a_minute() -> None:
    sessions = load_set(SET)
    lines = long_transcript(sessions, 60)
    assert 59 * 60 <= lines[-1].end <= 61 * 60
    assert all(a.end == b.start for a, b in itertools.pairwise(lines))
    words = sum(len(line.text.split()) for line in lines)
    assert 8500 <= words <= 9500
    assert len(lines) > sum(len(s.lines) for s in sessions)  # the set came round again
    assert len(long_transcript(sessions, 1)) < len(sessions[0].lines)


def test_the_clock_counts_every_piece_of_every_call() -> None:
    clocked = Clocked(FakeChatModel(reply="one two three"))
    asked = [ChatMessage("user", "hello")]
    assert "".join(clocked.stream(asked, GenerationOptions())) == "one two three"
    assert list(clocked.stream(asked, GenerationOptions(max_tokens=2))) == ["one", " two"]
    assert [c.pieces for c in clocked.calls] == [3, 2]
    first = clocked.calls[0]
    assert first.first_piece is not None
    assert first.last_piece is not None
    assert 0 <= first.first_piece <= first.last_piece <= first.total
    assert clocked.model_id == "fake-chat"


@pytest.mark.slow
@pytest.mark.model
@pytest.mark.timeout(600)
def test_bench_report_drafts_a_short_session_on_both_paths_and_prints_figures(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env["APPLIANCE_DATA_DIR"] = str(tmp_path)
    command = [sys.executable, "-m", "appliance", "bench", "report", "--minutes", "2"]
    done = subprocess.run(
        [*command, "--runs", "1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=560,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured: dict[str, Any] = json.loads(done.stdout)
    assert measured["model"].startswith("qwen2.5-0.5b-instruct-q4@sha256:")
    assert (measured["minutes"], measured["runs"], measured["windows"]) == (2, 1, 1)
    assert 200 <= measured["words"] <= 400
    prompt = measured["window_prompt_tokens"]["max"]
    assert prompt + measured["max_tokens"] <= measured["n_ctx"]
    rows = {row["path"]: row for row in measured["rows"]}
    assert list(rows) == list(PATHS)
    assert rows[PATHS[0]]["calls"] == 1  # the one window; no reduce for one window
    assert rows[PATHS[1]]["calls"] == 1
    for row in rows.values():
        assert row["seconds"] > 0
        assert row["first_piece_s_summed"] <= row["seconds"]
        assert 1 <= row["pieces"] <= measured["max_tokens"]
    table = render(measured)
    assert all(any(line.startswith(path) for line in table.splitlines()) for path in PATHS)
    assert "a 2-minute session" in table
