"""What the console's session page says about a session, in a therapist's words.

The page is the first place a new therapist looks after an upload, so it must explain what is
going on without the pipeline's vocabulary: which steps are waiting, done or stuck (labels from
`appliance.jobs.labels`), which of the patient's consents stop the work (a stage whose consent
is missing is cancelled when a worker reaches it, and everything after it with it; giving the
consent queues them again), and whether any worker is running at all (queued work without one
just waits). The raw error of a failed step is for administrators only: it names services and
exceptions that a therapist cannot act on. Release and the homework reminder are offered only
when they can work (a transcript exists; approved homework exists), never as a button that
leads to an error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.auth.guards import Principal
from appliance.clinic.models import Role
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.jobs import labels, workers
from appliance.jobs.models import Job, JobState
from appliance.pipeline.stages import pipeline
from appliance.recordings import service
from appliance.recordings.models import TherapySession
from appliance.recordings.schemas import RecordingProgress, SessionProgress
from appliance.retrieval.models import FactKind, SessionFact

# How recently a worker must have written its heartbeat to count as running (as on the Jobs
# dashboard).
WORKER_SEEN_WITHIN_SECONDS = 120
UNFINISHED = (JobState.queued.value, JobState.running.value, JobState.failed.value)


@dataclass(frozen=True)
class StageRow:
    label: str
    state: str  # the code's state, for the CSS class
    state_label: str
    progress: int
    attempts: int
    max_attempts: int
    outcome: str  # a plain sentence for failed, stopped or skipped steps, else ""
    error: str  # the raw last error: administrators only, else ""


@dataclass(frozen=True)
class RecordingView:
    progress: RecordingProgress
    rows: list[StageRow]
    transcribed: bool  # the transcript is there (every step up to naming the speakers done)


@dataclass(frozen=True)
class MissingConsent:
    purpose: str
    label: str
    effect: str


def session_context(db: Session, principal: Principal, row: TherapySession) -> dict[str, Any]:
    """The template context of the session page (besides the page's own title and notices)."""
    found = service.progress(db, row)
    purposes = _stage_purposes(db, found)
    admin = principal.role == Role.admin
    recordings = [_recording_view(r, purposes, admin) for r in found.recordings]
    unfinished = any(s.state in UNFINISHED for r in found.recordings for s in r.stages)
    waiting = any(
        s.state in (JobState.queued.value, JobState.failed.value)
        for r in found.recordings
        for s in r.stages
    )
    no_worker = waiting and not workers.live_workers(db, WORKER_SEEN_WITHIN_SECONDS)
    return {
        "progress": found,
        "recordings": recordings,
        "busy": unfinished,
        "no_worker": no_worker,
        "missing_consents": missing_consents(db, row.patient_id, purposes),
        "transcribed": any(r.transcribed for r in recordings),
        "has_homework": has_approved_homework(db, row.id),
    }


def missing_consents(
    db: Session, patient_id: uuid.UUID, stage_purposes: dict[str, str]
) -> list[MissingConsent]:
    """The consents the pipeline needs that the patient has not given (now), in pipeline order;
    before any recording, those of the whole pipeline."""
    needed = list(dict.fromkeys(stage_purposes.values())) or [
        str(stage.purpose.value) for stage in pipeline().values()
    ]
    if Purpose.recording.value not in needed:
        needed.insert(0, Purpose.recording.value)
    missing = []
    for purpose in dict.fromkeys(needed):
        if not consent.is_granted(db, patient_id, Purpose(purpose)):
            missing.append(
                MissingConsent(
                    purpose, labels.purpose_label(purpose), labels.purpose_effect(purpose)
                )
            )
    return missing


def has_approved_homework(db: Session, session_id: uuid.UUID) -> bool:
    """Whether a homework reminder can be drafted: the service drafts from approved homework
    only (409 otherwise). Counted without opening any sealed text."""
    count = db.exec(
        select(func.count())
        .select_from(SessionFact)
        .where(SessionFact.session_id == session_id, col(SessionFact.approved).is_(True))
        .where(SessionFact.kind == FactKind.homework.value)
    ).one()
    return bool(count)


def _stage_purposes(db: Session, found: SessionProgress) -> dict[str, str]:
    """Stage name -> the consent purpose it needs, as recorded on this session's jobs."""
    ids = [r.recording_id for r in found.recordings]
    if not ids:
        return {}
    rows = db.exec(
        select(Job.stage, Job.purpose).where(col(Job.recording_id).in_(ids)).distinct()
    ).all()
    order = list(pipeline())
    known = dict(rows)
    return dict(sorted(known.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))


def _recording_view(
    recording: RecordingProgress, purposes: dict[str, str], admin: bool
) -> RecordingView:
    rows = [
        StageRow(
            label=labels.stage_label(stage.stage),
            state=stage.state,
            state_label=labels.state_label(stage.state),
            progress=stage.progress,
            attempts=stage.attempts,
            max_attempts=stage.max_attempts,
            outcome=labels.plain_outcome(
                stage.state, stage.attempts, stage.last_error, purposes.get(stage.stage, "")
            ),
            error=(stage.last_error or "") if admin else "",
        )
        for stage in recording.stages
    ]
    states = {stage.stage: stage.state for stage in recording.stages}
    transcript_stages = ("transcribe", "diarize", "attribute")
    transcribed = all(states.get(name) == JobState.succeeded.value for name in transcript_stages)
    return RecordingView(recording, rows, transcribed)
