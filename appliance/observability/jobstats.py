"""Queue state and job durations, read from the jobs table at scrape time.

Workers are separate processes with no HTTP server of their own, and the jobs table already
holds what a worker would record (each attempt's `started_at`, and `finished_at` when it ends,
written in the same transaction as the state). Reading it at scrape time needs no shared
metric files (prometheus_client's multiprocess mode: a directory to wipe at the right moment,
a file per pid that grows with every restart) and counts jobs run by `appliance ingest --wait`
too. The price: durations are those of jobs that finished in a recent window (a gauge
histogram, which can go down), not an ever-growing counter, so read them with
`histogram_quantile` on the buckets directly, not through `rate()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

WINDOW_HOURS = 24
DURATIONS_SQL = text(
    "WITH finished AS ("
    " SELECT stage, state, EXTRACT(EPOCH FROM finished_at - started_at)::float8 AS seconds"
    " FROM jobs WHERE state IN ('succeeded', 'dead') AND started_at IS NOT NULL"
    " AND finished_at >= started_at AND finished_at > now() - make_interval(hours => :hours))"
    " SELECT f.stage, f.state, b.bound, count(*) FILTER (WHERE f.seconds <= b.bound),"
    " count(*), sum(f.seconds)"
    " FROM finished f CROSS JOIN unnest(CAST(:bounds AS float8[])) AS b(bound)"
    " GROUP BY f.stage, f.state, b.bound ORDER BY f.stage, f.state, b.bound"
)
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
# Outcomes with a meaningful duration: a job cancelled while it waited never ran.
OUTCOMES = ("succeeded", "dead")


@dataclass(frozen=True)
class Durations:
    stage: str
    outcome: str
    cumulative: tuple[int, ...]  # jobs at or under each bucket bound, then all (+Inf)
    total_seconds: float


def job_counts(conn: Connection) -> list[tuple[str, str, int]]:
    """(stage, state, jobs): one GROUP BY on a table with an index on state."""
    rows = conn.execute(text("SELECT stage, state, count(*) FROM jobs GROUP BY stage, state"))
    return [(str(stage), str(state), int(n)) for stage, state, n in rows]


def job_durations(conn: Connection, window_hours: int = WINDOW_HOURS) -> list[Durations]:
    """Per stage and outcome, the last attempt's duration of jobs finished in the window,
    counted into cumulative buckets in SQL (a handful of rows come back, not every job)."""
    rows = conn.execute(
        DURATIONS_SQL, {"bounds": list(DURATION_BUCKETS), "hours": window_hours}
    ).all()
    grouped: dict[tuple[str, str], list[Any]] = {}
    for stage, outcome, _bound, at_or_under, total, seconds in rows:  # ordered by bound
        grouped.setdefault((str(stage), str(outcome)), []).append((at_or_under, total, seconds))
    found = []
    for (stage, outcome), per_bound in grouped.items():
        cumulative = (*(int(row[0]) for row in per_bound), int(per_bound[0][1]))
        found.append(Durations(stage, outcome, cumulative, float(per_bound[0][2])))
    return found
