"""Console for administrators: jobs by state, with a retry button for the stuck ones."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template
from sqlmodel import Session, col, select

from appliance.auth.guards import Principal
from appliance.clinic.models import Role
from appliance.jobs import service, workers
from appliance.jobs.models import Job, JobState
from appliance.web.pages import PageController, page, see_other

RETRYABLE = (JobState.dead.value, JobState.failed.value, JobState.cancelled.value)


class JobPages(PageController):
    path = "/console/jobs"

    @get("/", sync_to_thread=True)
    def jobs(
        self,
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        job_state: Annotated[JobState | None, QueryParameter(name="state")] = None,
        done: FromQuery[str | None] = None,
    ) -> Template:
        principal.require(Role.admin)
        query = select(Job).order_by(col(Job.updated_at).desc()).limit(200)
        if job_state is not None:
            query = query.where(Job.state == job_state.value)
        return page(
            request,
            "jobs.html",
            principal,
            title="Jobs",
            jobs=list(db_session.exec(query)),
            states=[s.value for s in JobState],
            selected=job_state.value if job_state else None,
            retryable=RETRYABLE,
            workers=workers.live_workers(db_session, 120),
            notice="Queued again." if done == "retried" else None,
        )

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
