"""Issue 10, fault injection (the worker part), short form of `appliance soak worker-faults`:
a real `appliance worker` (fake model backends) is `kill -9`ed once in every stage at a random
point, and PostgreSQL is stopped under a stage about to commit; every job still finishes
exactly once, with no duplicate or missing output."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.settings import Settings
from appliance.soak import worker_faults as faults
from appliance.soak.worker_faults import STAGES, Harness

pytestmark = pytest.mark.slow


@pytest.fixture
def harness(
    settings: Settings, alice: UserPublic, bob: PatientPublic, tmp_path: Path
) -> Iterator[Harness]:
    harness = Harness(settings, tmp_path, bob.id, alice.id)
    try:
        yield harness
    finally:
        harness.close()


def test_a_worker_killed_at_a_random_point_of_every_stage_leaves_each_job_done_exactly_once(
    harness: Harness,
) -> None:
    seed = int(os.environ.get("WORKER_FAULTS_SEED") or random.randrange(2**32))
    print(f"worker-faults seed {seed} (replay: WORKER_FAULTS_SEED={seed})")
    reference = faults.clean_reference(harness)
    assert reference.outputs == dict.fromkeys(
        ["recording_probes", "transcripts", "diarizations", "attributions", "session_reports"], 1
    )
    assert reference.chunk_ordinals
    assert reference.vectors_per_chunk == (1,) * len(reference.chunk_ordinals)

    plan = faults.random_faults(random.Random(seed))
    recording_id, kills = faults.run_round(harness, plan, day=1)

    assert [kill.fault.stage for kill in kills] == list(STAGES)  # one kill per stage
    tally = faults.Tally()
    tally.add(kills, harness.census(recording_id), reference)
    assert (tally.duplicates, tally.missing, tally.problems) == (0, 0, []), seed
    for kill in kills:
        if kill.stage is not None:
            assert kill.recovery_seconds is not None, kill


@pytest.fixture
def own(tmp_path: Path) -> Iterator[tuple[Any, Harness]]:
    """A PostgreSQL of this test's own: the shared one must never be stopped."""
    with faults.own_appliance(tmp_path / "own") as (server, harness):
        yield server, harness


def test_postgres_stopped_under_a_running_stage_delays_its_job_which_then_finishes_once(
    own: tuple[Any, Harness],
) -> None:
    server, harness = own
    reference = faults.clean_reference(harness)

    outage = faults.postgres_outage(server, harness, reference, day=1)

    print(outage.summary())
    assert outage.survived  # no restart needed: the worker waited the outage out
    assert (outage.duplicates, outage.missing, outage.problems) == (0, 0, [])
    assert outage.recovery_seconds < 30
