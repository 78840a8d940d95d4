"""`appliance eval retrieval`: the bundled labelled set through the real search, chunker and
the packaged all-MiniLM-L6-v2, in a scratch appliance."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from appliance.retrieval.chunking import chunk
from appliance.retrieval.evaluate import load_set, script_segments
from tests.conftest import REPO, run_cli

SET = REPO / "demo" / "retrieval" / "set.toml"


def test_the_bundled_set_has_two_patients_and_answerable_questions() -> None:
    data = load_set(SET)
    assert {p["key"] for p in data["patients"]} == {s["patient"] for s in data["sessions"]}
    assert len(data["patients"]) == 2
    assert len(data["questions"]) >= 20
    lines = {s["key"]: s["lines"] for s in data["sessions"]}
    for question in data["questions"]:
        assert any(question["passage"] in text for _, text in lines[question["session"]])


def test_scripted_lines_become_timed_segments_and_chunks_of_whole_sentences() -> None:
    data = load_set(SET)
    segments = script_segments(data["sessions"][0]["lines"])
    assert [s.role for s in segments[:2]] == ["therapist", "patient"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(segments))
    chunks = chunk(segments)
    assert chunks
    assert all(c.text.rstrip()[-1] in ".?!" for c in chunks)


@pytest.mark.model
def test_eval_retrieval_meets_the_recall_goal_with_the_demo_embedder(tmp_path: Path) -> None:
    result = run_cli("eval", "retrieval", "--json", env={"APPLIANCE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["questions"] >= 20
    assert found["model"] == "sentence-transformers/all-minilm-l6-v2"
    assert found["recall_at_5"] >= 0.95, found["misses"]
    assert 0 < found["recall_at_1"] <= found["recall_at_5"]
    assert found["recall_at_1"] <= found["mrr"] <= 1


def test_eval_retrieval_refuses_a_file_that_is_not_a_set(tmp_path: Path) -> None:
    bogus = tmp_path / "set.toml"
    bogus.write_text('today = "yesterday"\n')
    result = run_cli("eval", "retrieval", str(bogus), env={"APPLIANCE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: set.toml is not a retrieval set")
    assert len(result.stderr.strip().splitlines()) == 1
