"""Console for administrators: the jobs dashboard.

Counts per stage and state, the jobs by state and stage with a progress bar each, the dead
ones with the reason they died, and a retry button for the stuck ones. The page works without
JavaScript (filters are links, retry is a form, reload shows the news); `jobs.js` polls
`live.json` every few seconds and moves the progress bars, states and counts in place.
Jobs hold ids, stages and the appliance's own error words: no patient data.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template
from sqlmodel import Session, col, func, select

from appliance.auth.guards import Principal
from appliance.clinic.models import Role
from appliance.jobs import service, workers
from appliance.jobs.models import Job, JobState
from appliance.pipeline.stages import pipeline
from appliance.web.i18n import _
from appliance.web.pages import PageController, page, see_other

RETRYABLE = (JobState.dead.value, JobState.failed.value, JobState.cancelled.value)
LISTED = 200  # the newest jobs shown; the counts cover all of them
POLL_SECONDS = 3


def _jobs(session: Session, job_state: JobState | None, stage: str | None) -> list[Job]:
    query = select(Job).order_by(col(Job.updated_at).desc()).limit(LISTED)
    if job_state is not None:
        query = query.where(Job.state == job_state.value)
    if stage:
        query = query.where(Job.stage == stage)
    return list(session.exec(query))


def counts(session: Session) -> dict[str, dict[str, int]]:
    """{stage: {state: count}} over every job."""
    table: dict[str, dict[str, int]] = {}
    query = select(Job.stage, Job.state, func.count()).group_by(col(Job.stage), col(Job.state))
    for stage, state, count in session.exec(query):
        table.setdefault(stage, {})[state] = count
    return table


def stage_names(found: dict[str, dict[str, int]]) -> list[str]:
    """Pipeline order first, then any stage only old rows still name."""
    known = list(pipeline())
    return known + sorted(set(found) - set(known))


def _public(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "stage": job.stage,
        "state": job.state,
        "progress": job.progress,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "updated_at": job.updated_at.isoformat(),
    }


class JobPages(PageController):
    path = "/console/jobs"

    @get("/", sync_to_thread=True)
    def jobs(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
        job_state: Annotated[JobState | None, QueryParameter(name="state")] = None,
        stage: Annotated[str | None, QueryParameter(max_length=32)] = None,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        table = counts(db_session)
        totals: Counter[str] = Counter()
        for by_state in table.values():
            totals.update(by_state)
        dead = list(
            db_session.exec(
                select(Job)
                .where(Job.state == JobState.dead.value)
                .order_by(col(Job.updated_at).desc())
                .limit(50)
            )
        )
        return page(
            request,
            "jobs.html",
            principal,
            title=_("Jobs"),
            wide=True,
            jobs=_jobs(db_session, job_state, stage),
            dead=dead,
            counts=table,
            totals=totals,
            stages=stage_names(table),
            states=[s.value for s in JobState],
            selected=job_state.value if job_state else None,
            selected_stage=stage or None,
            retryable=RETRYABLE,
            workers=workers.live_workers(db_session, 120),
            zone=ZoneInfo(state.settings.clinic.timezone),
            poll_seconds=POLL_SECONDS,
            notice=_("Queued again.") if done == "retried" else None,
        )

    @get("/live.json", sync_to_thread=True)
    def live(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        job_state: Annotated[JobState | None, QueryParameter(name="state")] = None,
        stage: Annotated[str | None, QueryParameter(max_length=32)] = None,
    ) -> dict[str, Any]:
        """What the dashboard's script polls: the listed jobs and the counts, as JSON."""
        principal.require(Role.admin)
        return {
            "jobs": [_public(job) for job in _jobs(db_session, job_state, stage)],
            "counts": counts(db_session),
            "workers": len(workers.live_workers(db_session, 120)),
        }

    @post("/{job_id:uuid}/retry", sync_to_thread=True)
    def retry(
        self,
        job_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> Response[Any]:
        principal.require(Role.admin)
        service.retry(db_session, principal.actor(), job_id)
        db_session.commit()
        state.queue.wake()
        return see_other("/console/jobs?done=retried")
