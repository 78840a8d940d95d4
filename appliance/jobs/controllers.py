"""Jobs over HTTP for administrators: what is stuck, and a retry for dead jobs."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from sqlmodel import Session, col, select

from appliance.auth.guards import Principal, provide_principal
from appliance.clinic.models import Role
from appliance.jobs import service
from appliance.jobs.models import Job, JobState
from appliance.jobs.schemas import JobPublic


class JobController(Controller):
    path = "/api/v1/jobs"
    tags = ["jobs"]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=True)}

    @get("/", sync_to_thread=True)
    def list_jobs(
        self,
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        job_state: Annotated[JobState | None, QueryParameter(name="state")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[JobPublic]:
        """Newest first; `state=dead` lists the jobs that need a person."""
        principal.require(Role.admin)
        query = select(Job).order_by(col(Job.updated_at).desc()).limit(limit)
        if job_state is not None:
            query = query.where(Job.state == job_state.value)
        return [JobPublic.model_validate(j, from_attributes=True) for j in db_session.exec(query)]

    @post("/{job_id:uuid}/retry", status_code=200, sync_to_thread=True)
    def retry(
        self,
        job_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        db_session: NamedDependency[Session],
        state: State,
    ) -> JobPublic:
        """Give a dead, failed or cancelled job a fresh set of attempts (audited)."""
        principal.require(Role.admin)
        job = service.retry(db_session, principal.actor(), job_id)
        db_session.commit()
        state.queue.wake()
        return JobPublic.model_validate(job, from_attributes=True)
