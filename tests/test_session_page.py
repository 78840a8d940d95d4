"""The console's session page as a new therapist meets it: the patient and date in words, the
pipeline's steps in plain language, what stops the work (a missing consent, no worker running)
and release and the homework reminder only once they can work. TestClient on the real app and
database; the pipeline runs with the fake speech models."""

from __future__ import annotations

from html import unescape

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, select

from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs import labels, runner, workers
from appliance.jobs.models import Job, JobState
from appliance.recordings.models import TherapySession
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import Browser, add_recording, consented_session, signed_in, signed_in_admin
from tests.speech_fakes import FakeSpeech

EVERY_PURPOSE = tuple(Purpose)
RAW_ERROR = (
    "ModelUnavailable: the language model service is not running (connection refused); "
    "start appliance llm"
)


@pytest.fixture
def as_alice(browser: Browser, people: dict[str, UserPublic]) -> TestClient[Litestar]:
    client, _csrf = signed_in(browser, "alice@clinic.example")
    return client


def page_of(client: TestClient[Litestar], row: TherapySession, query: str = "") -> str:
    response = client.get(f"/console/sessions/{row.id}{query}")
    assert response.status_code == 200, response.text
    return unescape(response.text)


def test_the_heading_and_title_name_the_patient_and_the_date_in_words(
    as_alice: TestClient[Litestar],
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id)
    html = page_of(as_alice, row)
    assert "<h1>Bob Brennan — session of 14 November 2026</h1>" in html
    assert "<title>Bob Brennan — session of 14 November 2026 · " in html
    assert "Session of 2026-11-14" not in html


def test_an_upload_without_transcription_consent_says_so_and_links_to_the_consent_page(
    as_alice: TestClient[Litestar],
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id, Purpose.recording)
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    html = page_of(as_alice, row, "?done=uploaded")
    assert "Transcription has been queued" not in html
    assert "it will not be transcribed until the patient gives consent for transcription" in html
    assert 'id="missing-transcription"' in html
    assert "No consent for transcription: the recording is stored but will not be transcribed" in (
        html
    )
    assert 'id="missing-ai_analysis"' in html  # the report stage needs AI analysis
    assert 'id="missing-recording"' not in html
    assert f'href="/console/patients/{bob.id}/consent"' in html


def test_with_every_consent_given_the_upload_says_transcription_is_queued_and_warns_of_nothing(
    as_alice: TestClient[Litestar],
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id, *EVERY_PURPOSE)
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    html = page_of(as_alice, row, "?done=uploaded")
    assert "Transcription has been queued." in html
    assert 'id="missing-consent"' not in html


def test_a_step_without_its_consent_reads_as_not_run_for_want_of_that_consent(
    as_alice: TestClient[Litestar],
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id, Purpose.recording)
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    runner.drain(database, settings, store, "test-worker", FakeSpeech().pipeline())
    html = page_of(as_alice, row)
    assert '<th scope="row">Transcribing</th>' in html
    assert "Not run: the patient has not given consent for transcription." in html
    assert "consent for transcription is not given" not in html  # the raw reason stays inside


def test_queued_work_with_no_worker_running_tells_the_therapist_to_ask_it(
    as_alice: TestClient[Litestar],
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id, *EVERY_PURPOSE)
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    html = page_of(as_alice, row)
    assert "No worker is processing recordings right now" in html
    assert "start the appliance's workers" in html
    assert "updates itself" not in html

    workers.heartbeat(session, "worker-1")
    html = page_of(as_alice, row)
    assert "No worker is processing" not in html
    assert "This page updates itself while work is under way." in html


def test_the_steps_read_in_plain_words_and_only_an_admin_sees_the_raw_error(
    as_alice: TestClient[Litestar],
    browser: Browser,
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, people["alice"].id, *EVERY_PURPOSE)
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    report = session.exec(select(Job).where(Job.stage == "report")).one()
    report.state, report.attempts, report.last_error = JobState.dead.value, 3, RAW_ERROR
    transcribe = session.exec(select(Job).where(Job.stage == "transcribe")).one()
    transcribe.state, transcribe.attempts = JobState.failed.value, 1
    transcribe.last_error = "RuntimeError: CUDA out of memory"
    session.add_all([report, transcribe])
    session.commit()

    html = page_of(as_alice, row)
    for label in labels.STAGE_LABELS.values():
        assert f'<th scope="row">{label}</th>' in html
    assert '<th scope="row">probe</th>' not in html
    assert ">Stopped</td>" in html
    assert ">Failed, will retry</td>" in html
    assert ">Waiting</td>" in html
    assert "This step stopped after 3 attempts; the clinic's IT can see the reason" in html
    assert "This step failed; it will be retried." in html
    assert "ModelUnavailable" not in html
    assert "CUDA" not in html

    admin, _csrf = signed_in_admin(browser)
    html = page_of(admin, row)
    assert RAW_ERROR in html
    assert "RuntimeError: CUDA out of memory" in html


def test_release_waits_for_the_transcript_and_the_reminder_for_approved_homework(
    as_alice: TestClient[Litestar],
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    row = consented_session(
        session, bob.id, people["alice"].id, Purpose.recording, Purpose.transcription
    )
    before = page_of(as_alice, row)
    assert "Release for patient questions" not in before
    assert f'action="/console/sessions/{row.id}/release"' not in before
    assert "Once the session's recording has been transcribed, you can release it" in before
    assert 'action="/console/messages/draft-reminder"' not in before
    assert "can be drafted once this session's report, with its homework, is approved" in before

    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    runner.drain(database, settings, store, "test-worker", FakeSpeech().pipeline())
    alice = Actor(role="therapist", user_id=people["alice"].id)
    facts.add(session, store, alice, row, FactKind.homework, "Walk every morning", start=1,
              end=2, approved=True)  # fmt: skip
    session.commit()
    after = page_of(as_alice, row)
    assert "Release for patient questions" in after
    assert 'action="/console/messages/draft-reminder"' in after
    assert "Draft a homework reminder" in after
