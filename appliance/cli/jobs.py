"""Pipeline commands: the worker, the job list, retries, and waiting for a recording."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import click

from appliance.audit.service import cli_actor
from appliance.cli import (
    data_dir_option,
    data_session,
    emit,
    json_option,
    main,
    one_line_errors,
    settings_for,
)
from appliance.jobs import service as jobs
from appliance.jobs.models import Job, JobState
from appliance.jobs.schemas import JobPublic


def _stage_names(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """`transcribe,diarize` -> frozenset of pipeline stage names; unknown names are refused, so
    a typo in a unit file stops the service at once instead of starving a stage."""
    if value is None:
        return None
    from appliance.pipeline.stages import pipeline

    known = list(pipeline())
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        what = f"unknown stage {', '.join(unknown)}" if unknown else "name at least one stage"
        raise click.BadParameter(f"{what} (stages: {', '.join(known)})")
    return frozenset(names)


def stages_to_run(
    only: frozenset[str] | None, skip: frozenset[str] | None
) -> frozenset[str] | None:
    """The stages a worker leases, from its --only or --skip (None: every stage, and a job of
    a stage this version does not know is leased and marked dead)."""
    from appliance.pipeline.stages import pipeline

    if only is not None and skip is not None:
        raise click.UsageError("give --only or --skip, not both")
    if skip is None:
        return only
    runs = frozenset(pipeline()) - skip
    if not runs:
        raise click.UsageError("--skip leaves no stage to run")
    return runs


@main.command()
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Default from config.")
@click.option(
    "--only",
    metavar="STAGES",
    callback=_stage_names,
    help="Run only these stages (comma-separated), e.g. the GPU worker's speech stages.",
)
@click.option(
    "--skip",
    metavar="STAGES",
    callback=_stage_names,
    help="Run every stage but these (comma-separated), e.g. the CPU worker.",
)
@data_dir_option
@one_line_errors
def worker(
    threads: int | None,
    only: frozenset[str] | None,
    skip: frozenset[str] | None,
    data_dir: Path | None,
) -> None:
    """Run pipeline jobs until stopped (SIGTERM or Ctrl-C).

    With --only or --skip the worker leases jobs of those stages only, so a GPU worker and a
    CPU worker can share the queue (see systemd/README.md)."""
    from appliance.instance import require_initialised
    from appliance.jobs.tasks import run_worker
    from appliance.observability.process import start_service_process

    runs = stages_to_run(only, skip)
    settings = settings_for(data_dir)
    require_initialised(settings)
    start_service_process(settings)
    run_worker(settings, threads, runs)


@main.group("jobs")
def jobs_group() -> None:
    """Pipeline jobs (the jobs table is the truth)."""


@jobs_group.command("list")
@click.option("--state", type=click.Choice([s.value for s in JobState]), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@data_dir_option
@json_option
@one_line_errors
def jobs_list(state: str | None, limit: int, data_dir: Path | None, as_json: bool) -> None:
    """Newest first: stage, state, attempts and the last error (never patient data)."""
    from sqlmodel import col, select

    with data_session(data_dir) as (_, session):
        query = select(Job).order_by(col(Job.updated_at).desc()).limit(limit)
        if state:
            query = query.where(Job.state == state)
        rows = [JobPublic.model_validate(j, from_attributes=True) for j in session.exec(query)]
    lines = [
        f"{r.id}  {r.stage:<10} {r.state:<9} {r.attempts}/{r.max_attempts}  {r.last_error or ''}"
        for r in rows
    ]
    emit([r.model_dump(mode="json") for r in rows], as_json, "\n".join(lines) or "No jobs.")


@jobs_group.command("retry")
@click.argument("job_id", type=click.UUID)
@data_dir_option
@json_option
@one_line_errors
def jobs_retry(job_id: uuid.UUID, data_dir: Path | None, as_json: bool) -> None:
    """Give a dead, failed or cancelled job a fresh set of attempts."""
    from appliance.jobs.tasks import JobQueue

    with data_session(data_dir) as (settings, session):
        row = jobs.retry(session, cli_actor(), job_id)
        job = JobPublic.model_validate(row, from_attributes=True)
    JobQueue(settings).wake()
    emit(job.model_dump(mode="json"), as_json, f"Queued {job.stage} again.")
