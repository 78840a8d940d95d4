"""The job lifecycle as plain functions on a database session.

queued -> running (a lease: token + expiry, renewed while the stage works) -> succeeded, or
failed (runs again after a backoff) and finally dead; cancelled when the consent the stage
needs is withdrawn. Every change to a job's state is guarded by its lease token, so a worker
that lost its lease (it stalled, the sweep handed the job on) can no longer write anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import exists, text, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.errors import Conflict, NotFound
from appliance.jobs.models import FINISHED, WAITING, Job, JobState

MAX_BACKOFF_SECONDS = 3600
# A row locked FOR UPDATE must be read as it is now, not as this session last saw it.
FRESH: dict[str, Any] = {"execution_options": {"populate_existing": True}}


class StageSpec(Protocol):
    """What the job table needs to know about a stage."""

    name: str
    purpose: Purpose
    after: str | None


class LeaseLost(RuntimeError):
    """This worker no longer holds the job (the lease expired and was handed on, or the job
    was cancelled or erased): whatever it computed must be thrown away."""


class ConsentWithdrawn(RuntimeError):
    """The consent the stage needs was withdrawn while it ran."""


@dataclass(frozen=True)
class Lease:
    job_id: uuid.UUID
    token: uuid.UUID
    stage: str
    recording_id: uuid.UUID
    patient_id: uuid.UUID
    purpose: Purpose
    attempt: int


def now_utc() -> datetime:
    return datetime.now(UTC)


def create_for_recording(
    session: Session,
    recording_id: uuid.UUID,
    patient_id: uuid.UUID,
    stages: Iterable[StageSpec],
    max_attempts: int,
) -> list[Job]:
    """One queued job per stage, in the caller's transaction (with the recording row)."""
    jobs = [
        Job(
            recording_id=recording_id,
            patient_id=patient_id,
            stage=stage.name,
            purpose=stage.purpose.value,
            after_stage=stage.after,
            max_attempts=max_attempts,
        )
        for stage in stages
    ]
    session.add_all(jobs)
    return jobs


def for_recording(session: Session, recording_id: uuid.UUID) -> list[Job]:
    return list(
        session.exec(
            select(Job).where(Job.recording_id == recording_id).order_by(col(Job.created_at))
        )
    )


def claim(
    session: Session,
    worker: str,
    lease_seconds: int,
    *,
    recording_id: uuid.UUID | None = None,
    skip: Collection[str] = (),
    only: Collection[str] | None = None,
    now: datetime | None = None,
) -> Lease | None:
    """Lease the next runnable job, or None. Runnable: waiting, past its backoff, the stage it
    runs after has succeeded, and its consent granted right now (else it is cancelled here).
    `skip`: stages this caller does not run (`ingest --wait` leaves the report to workers).
    `only`: the stages this caller runs, if not all (`appliance worker --only`); a job of any
    other stage is neither leased nor, for want of consent, cancelled by this caller."""
    if only is not None and not only:
        return None
    while True:
        moment = now or now_utc()
        before = aliased(Job)
        query = (
            select(Job)
            .where(col(Job.state).in_(WAITING), col(Job.run_after) <= moment)
            .where(
                col(Job.after_stage).is_(None)
                | exists().where(
                    col(before.recording_id) == col(Job.recording_id),
                    col(before.stage) == col(Job.after_stage),
                    col(before.state) == JobState.succeeded.value,
                )
            )
            .order_by(col(Job.run_after), col(Job.created_at))
            .limit(1)
            .with_for_update(skip_locked=True, of=Job)
            .execution_options(populate_existing=True)
        )
        if recording_id is not None:
            query = query.where(Job.recording_id == recording_id)
        if skip:
            query = query.where(col(Job.stage).not_in(list(skip)))
        if only is not None:
            query = query.where(col(Job.stage).in_(list(only)))
        job = session.exec(query).first()
        if job is None:
            session.rollback()
            return None
        purpose = Purpose(job.purpose)
        if not consent.is_granted(session, job.patient_id, purpose):
            reason = f"consent for {purpose.value} is not given"
            siblings = _locked_jobs(session, job.recording_id)
            for stopped in [job, *downstream(siblings, job.stage)]:
                if stopped.state in WAITING:  # what waits on it cannot run either
                    _finish(stopped, JobState.cancelled, moment, reason)
                    session.add(stopped)
            session.commit()
            continue
        job.state, job.attempts = JobState.running.value, job.attempts + 1
        job.lease_token, job.worker = uuid.uuid4(), worker[:128]
        job.lease_expires_at = moment + timedelta(seconds=lease_seconds)
        job.started_at = job.updated_at = moment
        job.progress = 0
        session.add(job)
        session.commit()
        assert job.lease_token is not None
        return Lease(
            job.id,
            job.lease_token,
            job.stage,
            job.recording_id,
            job.patient_id,
            purpose,
            job.attempts,
        )


def renew(session: Session, lease: Lease, progress: int, lease_seconds: int) -> None:
    """Report progress and extend the lease. Raises LeaseLost when the job is no longer ours."""
    moment = now_utc()
    result = session.execute(
        update(Job)
        .where(col(Job.id) == lease.job_id, col(Job.lease_token) == lease.token)
        .where(col(Job.state) == JobState.running.value)
        .values(
            progress=max(0, min(99, progress)),
            lease_expires_at=moment + timedelta(seconds=lease_seconds),
            updated_at=moment,
        )
    )
    session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(str(lease.job_id))


def _held(session: Session, lease: Lease) -> Job:
    """The job row, locked, if this lease still holds it."""
    job = session.exec(select(Job).where(Job.id == lease.job_id).with_for_update(), **FRESH).first()
    if job is None or job.state != JobState.running.value or job.lease_token != lease.token:
        raise LeaseLost(str(lease.job_id))
    return job


def lock_consent(session: Session, patient_id: uuid.UUID, *, exclusive: bool) -> None:
    """Serialise a stage's commit (shared) against a withdrawal of the patient's consent
    (exclusive): an output commits before the withdrawal or not at all."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(
        text(f"SELECT {fn}(hashtextextended(:key, 0))"), {"key": f"consent:{patient_id}"}
    )


def complete(session: Session, lease: Lease, output_version: str) -> Job:
    """Mark the job succeeded in the caller's transaction, where the stage also writes its
    output. Raises LeaseLost or ConsentWithdrawn; then the caller must roll back."""
    lock_consent(session, lease.patient_id, exclusive=False)
    job = _held(session, lease)
    if not consent.is_granted(session, lease.patient_id, lease.purpose):
        raise ConsentWithdrawn(lease.purpose.value)
    _finish(job, JobState.succeeded, now_utc(), None)
    job.progress, job.output_version = 100, output_version[:64]
    session.add(job)
    return job


def fail(
    session: Session, lease: Lease, error: str, *, permanent: bool, backoff_seconds: int
) -> JobState:
    """Record a failed attempt: retried after a backoff, or dead when out of attempts."""
    job = _held(session, lease)
    moment = now_utc()
    if permanent or job.attempts >= job.max_attempts:
        _finish(job, JobState.dead, moment, error)
    else:
        wait = min(MAX_BACKOFF_SECONDS, backoff_seconds * 2 ** (job.attempts - 1))
        job.state, job.last_error = JobState.failed.value, error[:500]
        job.run_after = job.updated_at = moment + timedelta(seconds=wait)
        job.lease_token = job.lease_expires_at = None
    session.add(job)
    session.commit()
    return JobState(job.state)


def cancel(session: Session, lease: Lease, reason: str) -> None:
    job = _held(session, lease)
    _finish(job, JobState.cancelled, now_utc(), reason)
    session.add(job)
    session.commit()


def _finish(job: Job, state: JobState, moment: datetime, error: str | None) -> None:
    job.state = state.value
    job.finished_at = job.updated_at = moment
    job.lease_token = job.lease_expires_at = None
    if error is not None:
        job.last_error = error[:500]


def sweep(session: Session, now: datetime | None = None) -> int:
    """Hand back jobs whose worker stopped renewing its lease (killed, hung, machine lost).
    Each counts as a failed attempt, so a stage that kills its worker every time ends dead."""
    moment = now or now_utc()
    expired = session.exec(
        select(Job)
        .where(Job.state == JobState.running.value, col(Job.lease_expires_at) < moment)
        .with_for_update(skip_locked=True),
        **FRESH,
    ).all()
    for job in expired:
        error = f"worker {job.worker} stopped renewing its lease"
        if job.attempts >= job.max_attempts:
            _finish(job, JobState.dead, moment, error)
        else:
            job.state, job.last_error, job.run_after = JobState.failed.value, error, moment
            job.lease_token = job.lease_expires_at = None
            job.updated_at = moment
        session.add(job)
    session.commit()
    return len(expired)


def cancel_waiting(session: Session, patient_id: uuid.UUID, purposes: Sequence[Purpose]) -> int:
    """Cancel the patient's waiting jobs that need any of `purposes` (consent withdrawn), in
    the caller's transaction."""
    result = session.execute(
        update(Job)
        .where(col(Job.patient_id) == patient_id, col(Job.state).in_(WAITING))
        .where(col(Job.purpose).in_([p.value for p in purposes]))
        .values(
            state=JobState.cancelled.value,
            last_error="consent withdrawn",
            finished_at=now_utc(),
            updated_at=now_utc(),
            lease_token=None,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def resume_after_grant(session: Session, patient_id: uuid.UUID, purposes: Sequence[Purpose]) -> int:
    """Queue again the patient's jobs that were cancelled for want of one of `purposes`, now
    granted (in the caller's transaction). Their stages still wait for the ones before them,
    and consent is checked again when each is claimed."""
    wanted = {p.value for p in purposes}
    upstream = {f"consent for {p} is not given" for p in wanted}
    cancelled = session.exec(
        select(Job)
        .where(Job.patient_id == patient_id, Job.state == JobState.cancelled.value)
        .with_for_update(),
        **FRESH,
    ).all()
    resumed = 0
    for job in cancelled:
        error = job.last_error or ""
        if (job.purpose in wanted and error.startswith("consent")) or error in upstream:
            requeue(job)
            session.add(job)
            resumed += 1
    return resumed


def retry(session: Session, actor: Actor, job_id: uuid.UUID) -> Job:
    """Put a dead or cancelled job back in the queue with a fresh set of attempts (audited).
    Consent is checked again when it is claimed."""
    job = session.exec(select(Job).where(Job.id == job_id).with_for_update(), **FRESH).first()
    if job is None:
        raise NotFound("no such job")
    if job.state not in (JobState.dead.value, JobState.cancelled.value, JobState.failed.value):
        raise Conflict(f"a {job.state} job cannot be retried")
    job.state, job.attempts, job.run_after = JobState.queued.value, 0, now_utc()
    job.finished_at, job.updated_at = None, now_utc()
    session.add(job)
    for waiting in downstream(_locked_jobs(session, job.recording_id), job.stage):
        if waiting.state == JobState.cancelled.value:  # stopped because this one stopped
            requeue(waiting)
            session.add(waiting)
    record(
        session,
        actor,
        AuditEntry(
            "job.retry", "success", "job", str(job.id), job.patient_id, {"stage": job.stage}
        ),
    )
    return job


def downstream(jobs: Sequence[Job], stage: str) -> list[Job]:
    """The jobs that run after `stage`, directly or through other stages."""
    after = {job.stage: job.after_stage for job in jobs}

    def depends(name: str | None) -> bool:
        seen: set[str] = set()
        while name is not None and name not in seen:
            if name == stage:
                return True
            seen.add(name)
            name = after.get(name)
        return False

    return [job for job in jobs if job.stage != stage and depends(job.after_stage)]


def requeue(job: Job) -> None:
    """Back to the queue with fresh attempts; a running job's lease is void (the caller holds
    the row lock)."""
    job.state, job.attempts, job.progress = JobState.queued.value, 0, 0
    job.run_after = job.updated_at = now_utc()
    job.lease_token = job.lease_expires_at = job.worker = None
    job.finished_at = job.output_version = job.last_error = None


def _locked_jobs(session: Session, recording_id: uuid.UUID) -> list[Job]:
    return list(
        session.exec(
            select(Job).where(Job.recording_id == recording_id).with_for_update(), **FRESH
        ).all()
    )


def rerun_after(session: Session, recording_id: uuid.UUID, stage: str) -> list[str]:
    """Queue again every stage downstream of `stage` that has run or is running, e.g. after a
    therapist relabels speakers. A running job loses its lease, so its output is discarded at
    commit. Returns the stages re-queued."""
    requeued = []
    for job in downstream(_locked_jobs(session, recording_id), stage):
        if job.state != JobState.queued.value:
            requeue(job)
            session.add(job)
            requeued.append(job.stage)
    return requeued


def unfinished(jobs: Sequence[Job]) -> bool:
    """True while some job can still make progress by itself: not finished, and not waiting
    (directly or through other stages) on a dead or cancelled stage."""
    after = {job.stage: job.after_stage for job in jobs}
    stopped = {job.stage for job in jobs if job.state in (JobState.dead, JobState.cancelled)}

    def blocked(stage: str | None) -> bool:
        seen: set[str] = set()
        while stage is not None and stage not in seen:
            if stage in stopped:
                return True
            seen.add(stage)
            stage = after.get(stage)
        return False

    return any(job.state not in FINISHED and not blocked(job.after_stage) for job in jobs)
