"""The jobs table is the truth about pipeline work; Huey only wakes the workers.

One row per (recording, stage). A worker claims a row by taking a lease (a token and an expiry)
and renews it while it works; output and the row's `succeeded` commit in one transaction, and
only while the worker still holds the lease, so a stage's output is written exactly once even
when a worker dies and the sweep hands its job to another.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from appliance.clinic.models import utcnow


class JobState(StrEnum):
    queued = "queued"  # waiting (for its turn, its backoff or the stage it runs after)
    running = "running"  # leased by a worker
    succeeded = "succeeded"
    failed = "failed"  # the last attempt failed; it runs again after its backoff
    cancelled = "cancelled"  # consent withdrawn, or the recording is gone
    dead = "dead"  # out of attempts, or failed in a way retrying cannot fix


WAITING = (JobState.queued.value, JobState.failed.value)
FINISHED = (JobState.succeeded.value, JobState.cancelled.value, JobState.dead.value)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("recording_id", "stage", name="jobs_one_per_stage"),
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'dead')",
            name="job_state_known",
        ),
        CheckConstraint("progress BETWEEN 0 AND 100", name="job_progress_percent"),
        Index("ix_jobs_runnable", "state", "run_after"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    recording_id: uuid.UUID = Field(foreign_key="recordings.id", index=True, ondelete="CASCADE")
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True, ondelete="CASCADE")
    stage: str = Field(sa_type=String(32))
    # The consent this stage needs; checked in SQL when the job is claimed and again when its
    # output commits. Withdrawing it cancels the job.
    purpose: str = Field(sa_type=String(32))
    # The stage of the same recording that must succeed first (None: runs at once).
    after_stage: str | None = Field(default=None, sa_type=String(32))
    state: str = Field(default=JobState.queued.value, sa_type=String(16))
    attempts: int = 0
    max_attempts: int = 5
    progress: int = 0
    run_after: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    lease_token: uuid.UUID | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    worker: str | None = Field(default=None, sa_type=String(128))
    # Exception class and the appliance's own message only: never transcript text or names.
    last_error: str | None = Field(default=None, sa_type=String(500))
    output_version: str | None = Field(default=None, sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class JobWorker(SQLModel, table=True):
    """A running `appliance worker` process, seen recently. `ingest --wait` runs the stages
    itself when no worker is alive; the console lists them."""

    __tablename__ = "job_workers"

    id: str = Field(primary_key=True, sa_type=String(128))
    started_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    seen_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
