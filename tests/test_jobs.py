"""The job machinery: leases, retries, consent at the moment of use, and exactly-once output.

Stages here are deterministic fakes that record what they were given, next to the real
`probe` stage decoding real audio."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs import runner
from appliance.jobs import service as jobs
from appliance.jobs.models import Job, JobState
from appliance.jobs.runner import PermanentError, Stage, StageContext
from appliance.pipeline.models import RecordingProbe
from appliance.pipeline.probe import ProbeStage
from appliance.pipeline.stages import pipeline
from appliance.recordings.models import TherapySession
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import CLINIC_IT, add_recording, consented_session
from tests.speech_fakes import FakeSpeech

LATER = timedelta(days=1)


def fake_pipeline() -> dict[str, Stage]:
    """The real stages, with deterministic speech backends."""
    return FakeSpeech().pipeline()


@dataclass
class FakeStage:
    """Records every attempt; fails the first `failures` of them."""

    name: str
    purpose: Purpose = Purpose.recording
    after: str | None = None
    version: str = "fake-1"
    failures: int = 0
    error: Exception = field(default_factory=lambda: RuntimeError("Bob Brennan said something"))
    attempts: list[int] = field(default_factory=list)
    saved: list[uuid.UUID] = field(default_factory=list)

    def run(self, context: StageContext) -> str:
        self.attempts.append(context.lease.attempt)
        context.report(50)
        if len(self.attempts) <= self.failures:
            raise self.error
        return f"output of {self.name}"

    def save(self, session: Session, context: StageContext, output: Any) -> None:
        self.saved.append(context.recording.id)


def grant(session: Session, patient_id: uuid.UUID, *purposes: Purpose) -> None:
    consent.change(
        session, CLINIC_IT, patient_id, list(purposes), ConsentStatus.granted, ConsentMethod.paper
    )
    session.commit()


def revoke(session: Session, patient_id: uuid.UUID, *purposes: Purpose) -> None:
    consent.change(
        session, CLINIC_IT, patient_id, list(purposes), ConsentStatus.revoked, ConsentMethod.paper
    )
    session.commit()


@pytest.fixture
def recording(
    session: Session, settings: Settings, store: KeyStore, alice: UserPublic, bob: PatientPublic
) -> Any:
    """bob consented to recording and transcription; one 2-second session recording of his."""
    row = consented_session(session, bob.id, alice.id, Purpose.recording, Purpose.transcription)
    return add_recording(session, settings, store, row, make_audio("wav"))


def run_all(
    database: Database, settings: Settings, store: KeyStore, stages: dict[str, Stage]
) -> int:
    return runner.drain(database, settings, store, "test-worker", stages)


def job_rows(session: Session, recording_id: uuid.UUID) -> dict[str, Job]:
    session.expire_all()
    return {job.stage: job for job in jobs.for_recording(session, recording_id)}


def add_fake_jobs(session: Session, recording: Any, *stages: FakeStage, attempts: int = 5) -> None:
    jobs.create_for_recording(
        session, recording.recording_id, recording_patient(session, recording), stages, attempts
    )
    session.commit()


def recording_patient(session: Session, recording: Any) -> uuid.UUID:
    row = session.get(TherapySession, recording.session_id)
    assert row is not None
    return row.patient_id


def test_a_recording_arrives_with_a_queued_job_for_every_pipeline_stage(
    session: Session, recording: Any
) -> None:
    assert [stage for _, stage, _ in recording.jobs] == list(pipeline())
    assert {state for _, _, state in recording.jobs} == {"queued"}


def test_the_probe_stage_measures_the_recording_and_its_job_succeeds(
    session: Session, database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    assert run_all(database, settings, store, fake_pipeline()) == 5  # embed: no patient_chat
    job = job_rows(session, recording.recording_id)["probe"]
    assert (job.state, job.progress, job.attempts) == ("succeeded", 100, 1)
    assert job.output_version == ProbeStage.version
    probe = session.exec(select(RecordingProbe)).one()
    assert probe.recording_id == recording.recording_id
    assert (probe.sample_rate, probe.channels, probe.codec) == (16000, 1, "pcm_s16le")
    assert probe.duration_seconds == pytest.approx(2.0, abs=0.01)
    # A 220 Hz sine at a quarter of full scale: about -12 dBFS peak, -15 LUFS.
    assert probe.peak_dbfs == pytest.approx(-12.3, abs=0.5)
    assert -18 < probe.integrated_lufs < -12
    assert probe.silent_fraction == 0.0


def test_silence_is_measured_as_silence() -> None:
    import io

    from appliance.pipeline.probe import measure

    quiet = make_audio("wav", seconds=3.0, amplitude=0)
    measured = measure(io.BytesIO(quiet))
    assert measured.peak_dbfs == -120.0
    assert measured.integrated_lufs <= -70.0  # at or below the EBU R128 absolute gate
    assert measured.silent_fraction == 1.0


@pytest.mark.model
def test_speech_from_the_packaged_voice_gets_its_real_loudness() -> None:
    """Piper's output ends with frames the meter flushes without a measurement; the integrated
    loudness must come from the last frame that has one (a regression: it read -120 LUFS)."""
    import io
    import wave

    from piper import PiperVoice

    from appliance.pipeline.probe import measure
    from tests.conftest import REPO

    folder = REPO / "models" / "piper-joe-us"
    voice = PiperVoice.load(
        folder / "en_US-joe-medium.onnx", config_path=folder / "en_US-joe-medium.onnx.json"
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        voice.synthesize_wav("Welcome back. Last week we agreed on some homework.", wav)
    buffer.seek(0)
    measured = measure(buffer)
    assert -30 < measured.integrated_lufs < -5
    assert measured.peak_dbfs > -6
    assert 0 <= measured.silent_fraction < 0.5


def test_running_the_probe_stage_twice_writes_its_output_once(
    session: Session, database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    run_all(database, settings, store, fake_pipeline())
    job = job_rows(session, recording.recording_id)["probe"]
    job.state = "queued"  # as if the job were delivered again after it had committed
    session.add(job)
    session.commit()
    assert run_all(database, settings, store, fake_pipeline()) == 1
    assert job_rows(session, recording.recording_id)["probe"].state == "succeeded"
    assert len(session.exec(select(RecordingProbe)).all()) == 1


def test_a_worker_that_lost_its_lease_can_no_longer_commit(
    session: Session, database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    stalled = jobs.claim(session, "stalled-worker", lease_seconds=60)
    assert stalled is not None
    assert jobs.sweep(session, now=jobs.now_utc() + LATER) == 1  # its lease ran out
    healthy = jobs.claim(session, "healthy-worker", 60, now=jobs.now_utc() + LATER)
    assert healthy is not None
    assert runner.run_leased(database, settings, store, healthy, fake_pipeline()) == "succeeded"

    # The stalled worker wakes up and tries to commit what it computed.
    assert runner.run_leased(database, settings, store, stalled, fake_pipeline()) == "lost"
    job = job_rows(session, recording.recording_id)["probe"]
    assert (job.state, job.attempts) == ("succeeded", 2)
    assert "stopped renewing its lease" in (job.last_error or "")
    assert len(session.exec(select(RecordingProbe)).all()) == 1


def test_a_failing_stage_is_retried_after_a_backoff_then_dead_and_keeps_no_patient_data(
    session: Session, database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    flaky = FakeStage("flaky", failures=99)
    add_fake_jobs(session, recording, flaky, attempts=3)
    stages: dict[str, Stage] = {"flaky": flaky, **fake_pipeline()}
    run_all(database, settings, store, stages)
    job = job_rows(session, recording.recording_id)["flaky"]
    assert (job.state, job.attempts) == ("failed", 1)
    assert job.run_after > jobs.now_utc() + timedelta(seconds=5)  # backoff: not yet
    assert run_all(database, settings, store, stages) == 0

    for _ in range(2):
        lease = jobs.claim(session, "w", 60, now=jobs.now_utc() + LATER)
        assert lease is not None
        runner.run_leased(database, settings, store, lease, stages)
    job = job_rows(session, recording.recording_id)["flaky"]
    assert (job.state, job.attempts) == ("dead", 3)
    assert flaky.attempts == [1, 2, 3]
    assert job.last_error == "RuntimeError"  # the message (with a name in it) stays out


def test_an_unusable_input_makes_the_job_dead_at_once_with_the_reason(
    session: Session, database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    broken = FakeStage("broken", failures=1, error=PermanentError("the recording has no speech"))
    add_fake_jobs(session, recording, broken)
    run_all(database, settings, store, {"broken": broken, **fake_pipeline()})
    job = job_rows(session, recording.recording_id)["broken"]
    assert (job.state, job.attempts) == ("dead", 1)
    assert job.last_error == "PermanentError: the recording has no speech"


def test_a_stage_waits_for_the_stage_it_runs_after(
    session: Session, database: Database, settings: Settings, store: KeyStore, recording: Any
) -> None:
    first = FakeStage("first", failures=99)
    second = FakeStage("second", after="first")
    add_fake_jobs(session, recording, first, second, attempts=1)
    stages: dict[str, Stage] = {"first": first, "second": second, **fake_pipeline()}
    run_all(database, settings, store, stages)
    rows = job_rows(session, recording.recording_id)
    assert (rows["first"].state, rows["second"].state) == ("dead", "queued")
    assert second.attempts == []
    assert not jobs.unfinished(list(rows.values()))  # nothing more will happen by itself

    first.failures = 0
    jobs.retry(session, CLINIC_IT, rows["first"].id)
    session.commit()
    run_all(database, settings, store, stages)
    rows = job_rows(session, recording.recording_id)
    assert (rows["first"].state, rows["second"].state) == ("succeeded", "succeeded")


def test_withdrawing_consent_cancels_the_waiting_jobs_that_need_it_and_only_those(
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    recording: Any,
    bob: PatientPublic,
) -> None:
    transcribe = FakeStage("fake-transcribe", purpose=Purpose.transcription)
    add_fake_jobs(session, recording, transcribe)
    revoke(session, bob.id, Purpose.transcription)
    rows = job_rows(session, recording.recording_id)
    assert rows["fake-transcribe"].state == "cancelled"
    assert rows["fake-transcribe"].last_error == "consent withdrawn"
    assert rows["probe"].state == "queued"
    run_all(database, settings, store, {"fake-transcribe": transcribe, **fake_pipeline()})
    assert transcribe.attempts == []
    assert job_rows(session, recording.recording_id)["probe"].state == "succeeded"

    # Retrying without consent cancels it again at the moment of use.
    jobs.retry(session, CLINIC_IT, rows["fake-transcribe"].id)
    session.commit()
    run_all(database, settings, store, {"fake-transcribe": transcribe, **fake_pipeline()})
    assert job_rows(session, recording.recording_id)["fake-transcribe"].state == "cancelled"
    assert transcribe.attempts == []


def test_consent_withdrawn_while_a_stage_runs_throws_its_output_away(
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    recording: Any,
    bob: PatientPublic,
) -> None:
    transcribe = FakeStage("fake-transcribe", purpose=Purpose.transcription)
    add_fake_jobs(session, recording, transcribe)
    original = transcribe.run

    def withdraw_midway(context: StageContext) -> str:
        with database.session() as other:
            revoke(other, bob.id, Purpose.transcription)
        return original(context)

    transcribe.run = withdraw_midway  # type: ignore[method-assign]
    run_all(database, settings, store, {"fake-transcribe": transcribe, **fake_pipeline()})
    assert transcribe.attempts == [1]
    assert transcribe.saved == []
    assert job_rows(session, recording.recording_id)["fake-transcribe"].state == "cancelled"


def test_the_sweep_counts_a_lost_worker_as_a_failed_attempt(
    session: Session, recording: Any
) -> None:
    job = job_rows(session, recording.recording_id)["probe"]
    job.max_attempts = 2
    session.add(job)
    session.commit()
    for day, expected in ((1, "failed"), (3, "dead")):
        assert jobs.claim(session, "doomed", 60, now=jobs.now_utc() + day * LATER) is not None
        assert jobs.sweep(session, now=jobs.now_utc() + (day + 1) * LATER) == 1
        assert job_rows(session, recording.recording_id)["probe"].state == expected
    assert jobs.sweep(session, now=jobs.now_utc() + 9 * LATER) == 0


def test_an_erased_patients_running_job_ends_without_output(
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    recording: Any,
    bob: PatientPublic,
) -> None:
    from appliance.clinic.erasure import erase_patient

    lease = jobs.claim(session, "w", 60)
    assert lease is not None
    erase_patient(session, store, CLINIC_IT, settings.files_dir, bob.id)
    session.commit()
    assert runner.run_leased(database, settings, store, lease, fake_pipeline()) == "lost"
    assert session.exec(select(Job)).all() == []
    assert session.exec(select(RecordingProbe)).all() == []


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"a": "succeeded", "b": "queued"}, True),
        ({"a": "dead", "b": "queued"}, False),
        ({"a": "cancelled", "b": "queued"}, False),
        ({"a": "running", "b": "queued"}, True),
        ({"a": "succeeded", "b": "succeeded", "c": "succeeded"}, False),
        ({"a": "succeeded", "b": "succeeded"}, True),
        ({"a": "failed", "b": "queued"}, True),
    ],
)
def test_unfinished_knows_when_nothing_more_will_happen(
    states: dict[str, str], expected: bool
) -> None:
    rows = [
        Job(recording_id=uuid.uuid4(), patient_id=uuid.uuid4(), stage="a", purpose="x"),
        Job(
            recording_id=uuid.uuid4(),
            patient_id=uuid.uuid4(),
            stage="b",
            purpose="x",
            after_stage="a",
        ),
    ]
    rows.append(
        Job(
            recording_id=uuid.uuid4(),
            patient_id=uuid.uuid4(),
            stage="c",
            purpose="x",
            after_stage="b",
        )
    )
    for row in rows:
        row.state = states.get(row.stage, JobState.queued.value)
    assert jobs.unfinished(rows) is expected


def test_a_stage_without_consent_is_cancelled_with_the_stages_after_it_and_resumed_by_consent(
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, alice.id, Purpose.recording)
    added = add_recording(session, settings, store, row, make_audio("wav"))
    speech = FakeSpeech()
    assert run_all(database, settings, store, speech.pipeline()) == 1  # probe only
    states = {s: (j.state, j.last_error) for s, j in job_rows(session, added.recording_id).items()}
    reason = "consent for transcription is not given"
    assert states == {
        "probe": ("succeeded", None),
        "transcribe": ("cancelled", reason),
        "diarize": ("cancelled", reason),
        "attribute": ("cancelled", reason),
        "chunk": ("cancelled", reason),
        "embed": ("cancelled", reason),
        "report": ("cancelled", reason),
    }
    assert speech.transcriber.heard == []

    consent.change(
        session,
        CLINIC_IT,
        bob.id,
        [Purpose.transcription],
        ConsentStatus.granted,
        ConsentMethod.paper,
    )  # the stages waiting for it are queued again
    session.commit()
    assert run_all(database, settings, store, speech.pipeline()) == 4
    states = {s: (j.state, j.last_error) for s, j in job_rows(session, added.recording_id).items()}
    assert set(states.pop("embed")) == {"cancelled", "consent for patient_chat is not given"}
    assert set(states.pop("report")) == {"cancelled", "consent for ai_analysis is not given"}
    assert set(states.values()) == {("succeeded", None)}
    # A retry by hand puts a cancelled stage back too (and consent is checked again).
    jobs.retry(session, CLINIC_IT, job_rows(session, added.recording_id)["embed"].id)
    session.commit()
    assert run_all(database, settings, store, speech.pipeline()) == 0
