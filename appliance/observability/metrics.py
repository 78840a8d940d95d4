"""The metrics one web app exposes at `/metrics`, in Prometheus text format.

Each app has its own `CollectorRegistry` (not prometheus_client's global one), so tests and
several apps in one process never share or collide on a metric. What the web process measures
itself (request latency, chat time to first answer) lives in that registry; what other
processes do is read at scrape time from where they already record it: the jobs table for
queue depth and job durations (see `jobstats`), nvidia-smi for GPU memory. Labels carry route
templates, stages, states and model names, never a patient, user or session id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy.exc import SQLAlchemyError

from appliance import __version__
from appliance.observability import access, jobstats
from appliance.observability.gpu import gpu_memory
from appliance.observability.loads import loads_dir, model_load_seconds
from appliance.settings import Settings

logger = logging.getLogger("appliance.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
FIRST_TOKEN_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "dead")


class AppMetrics:
    """One app's registry and the rule for who may read it."""

    def __init__(self, settings: Settings) -> None:
        # `_created` series are OpenMetrics noise in the Prometheus text format.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.enabled = settings.metrics.enabled
        self.loads_dir = loads_dir(settings)
        self.allow = access.networks(settings.metrics.allow)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "appliance_http_request_duration_seconds",
            "Time to answer a request (streams: until the last byte), by route template.",
            ["method", "route", "status_class"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "appliance_chat_time_to_first_token_seconds",
            "Patient chat stream: from the question to the first verified words of the answer"
            " (checks, retrieval and the model's first sentence).",
            buckets=FIRST_TOKEN_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, f"{status // 100}xx").observe(seconds)

    def observe_first_token(self, started: float) -> None:
        """`started`: the `time.perf_counter()` taken when the question arrived."""
        self.first_token.observe(time.perf_counter() - started)

    def render(self, database: Any | None) -> bytes:
        """The exposition text: this app's registry plus what is read now."""
        return generate_latest(_Scrape(self.registry, database, self.loads_dir))


class _Scrape:
    """A collector for one scrape (generate_latest accepts anything with `collect`)."""

    def __init__(self, registry: CollectorRegistry, database: Any | None, loads: Any) -> None:
        self.registry, self.database, self.loads = registry, database, loads

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("appliance_build_info", "The running version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from self.registry.collect()
        if self.database is not None:
            yield from database_metrics(self.database)
        yield model_load_metric(model_load_seconds(self.loads))
        yield from gpu_metrics()


def database_metrics(database: Any) -> Iterator[Metric]:
    up = GaugeMetricFamily("appliance_database_up", "1 when this scrape could read the database.")
    try:
        with database.engine.connect() as conn:
            counts = jobstats.job_counts(conn)
            durations = jobstats.job_durations(conn)
    except SQLAlchemyError as exc:
        logger.warning("metrics: database unreadable", extra={"error": type(exc).__name__})
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    yield from job_metrics(counts, durations)


def job_metrics(
    counts: Iterable[tuple[str, str, int]], durations: Iterable[jobstats.Durations]
) -> Iterator[Metric]:
    """Every state of every stage seen, zeros included, so a drained queue reads 0 instead of
    vanishing from the scrape."""
    by_key = {(stage, state): n for stage, state, n in counts}
    stages = sorted({stage for stage, _ in by_key})
    jobs = GaugeMetricFamily(
        "appliance_jobs", "Jobs in the jobs table by stage and state.", labels=["stage", "state"]
    )
    for stage in stages:
        for state in JOB_STATES:
            jobs.add_metric([stage, state], by_key.get((stage, state), 0))
    yield jobs
    dead = GaugeMetricFamily("appliance_jobs_dead", "Jobs out of attempts (console: Jobs, retry).")
    dead.add_metric([], sum(n for (_, state), n in by_key.items() if state == "dead"))
    yield dead
    histogram = GaugeHistogramMetricFamily(
        "appliance_job_duration_seconds",
        f"Duration of the last attempt of jobs that finished in the last {jobstats.WINDOW_HOURS}"
        " h, by stage and outcome (a gauge histogram: use histogram_quantile on the buckets,"
        " not rate()).",
        labels=["stage", "outcome"],
    )
    for found in durations:
        bounds = [str(b) for b in jobstats.DURATION_BUCKETS] + ["+Inf"]
        histogram.add_metric(
            [found.stage, found.outcome],
            list(zip(bounds, found.cumulative, strict=True)),
            found.total_seconds,
        )
    yield histogram


def model_load_metric(loads: dict[str, float]) -> Metric:
    metric = GaugeMetricFamily(
        "appliance_model_load_seconds",
        "Seconds the latest load of each model took (web, workers and the llm service).",
        labels=["model"],
    )
    for model, seconds in sorted(loads.items()):
        metric.add_metric([model], seconds)
    return metric


def gpu_metrics() -> Iterator[Metric]:
    found = gpu_memory()
    if not found:
        return
    metric = GaugeMetricFamily(
        "appliance_gpu_memory_bytes",
        "GPU memory by device, used (all processes) and total.",
        labels=["device", "kind"],
    )
    for gpu in found:
        metric.add_metric([gpu.device, "used"], gpu.used_bytes)
        metric.add_metric([gpu.device, "total"], gpu.total_bytes)
    yield metric
