"""`appliance bench search` at a tiny size: the command runs end to end in a throwaway
PostgreSQL, measures every mode on the same queries, and proves each plan used the index it
was meant to (a benchmark of the wrong plan is worse than none). Speeds are not asserted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

TINY = ("--chunks", "3000", "--patients", "30", "--queries", "20", "--dim", "32")


def test_bench_search_compares_exact_per_patient_search_with_hnsw_at_small_size() -> None:
    result = run_cli("bench", "search", *TINY, "--json")
    assert result.returncode == 0, result.stderr
    measured: dict[str, Any] = json.loads(result.stdout)
    assert (measured["chunks"], measured["patients"], measured["dim"]) == (3000, 30, 32)
    rows = {row["mode"]: row for row in measured["rows"]}
    assert [row["mode"] for row in measured["rows"]] == ["exact", "hnsw", "hnsw_iterative"]
    assert rows["exact"]["recall_at_10"] == 1.0
    assert rows["exact"]["mean_rows"] == 10
    assert rows["exact"]["index"] == "bench_chunks_patient_btree"
    assert rows["hnsw"]["index"] == rows["hnsw_iterative"]["index"] == "bench_chunks_embedding_hnsw"
    for row in rows.values():
        assert row["p50_ms"] > 0
        assert row["p95_ms"] >= row["p50_ms"]
        assert 0 <= row["recall_at_10"] <= 1
    assert measured["hnsw_mib"] > 0


def test_bench_search_prints_the_modes_side_by_side_for_people() -> None:
    result = run_cli("bench", "search", *TINY)
    assert result.returncode == 0, result.stderr
    table = result.stdout.splitlines()
    assert any(line.startswith("exact ") and "bench_chunks_patient_btree" in line for line in table)
    assert table[-1].startswith("goal: p95 <= 10 ms with recall 1.0")


@pytest.mark.parametrize(
    "bad",
    [("--patients", "0"), ("--chunks", "10", "--patients", "20"), ("--dim", "4000")],
)
def test_bench_search_refuses_bad_sizes_with_a_one_line_error(bad: tuple[str, ...]) -> None:
    result = run_cli("bench", "search", *bad)
    assert result.returncode != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("Error: ")
