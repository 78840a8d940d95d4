"""Transcripts end to end with deterministic speech backends: the stages, the sealed storage,
the API (202 / 200 / 403 / 404 / 409), exports, relabelling, voice enrolment and the page."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.keystore import KeyMissing, KeyStore
from appliance.db import Database
from appliance.jobs import runner
from appliance.jobs import service as jobs
from appliance.pipeline import backends, voices
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import CLINIC_IT, Browser, add_recording, consented_session, signed_in
from tests.speech_fakes import FakeEncoder, FakeSpeech


@pytest.fixture
def speech() -> FakeSpeech:
    return FakeSpeech()


@pytest.fixture
def bobs_session(
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> Any:
    """bob's session with alice; he consented to recording and transcription; 2 s of audio."""
    row = consented_session(
        session, bob.id, people["alice"].id, Purpose.recording, Purpose.transcription
    )
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    return row


@pytest.fixture
def as_alice(browser: Browser, people: dict[str, UserPublic]) -> tuple[TestClient[Litestar], str]:
    return signed_in(browser, "alice@clinic.example")


def run_stages(database: Database, settings: Settings, store: KeyStore, speech: FakeSpeech) -> None:
    runner.drain(database, settings, store, "test-worker", speech.pipeline())


def enrol_alice(session: Session, store: KeyStore, alice: UserPublic) -> None:
    actor = Actor(role="therapist", user_id=alice.id)
    voices.enrol(session, store, FakeEncoder(), actor, io.BytesIO(make_audio("wav", 6.0)))
    session.commit()


@pytest.fixture
def transcribed(
    bobs_session: Any, database: Database, settings: Settings, store: KeyStore, speech: FakeSpeech
) -> Any:
    """bob's session after its stages ran (with the fake backends)."""
    run_stages(database, settings, store, speech)
    return bobs_session


def transcript_url(row: Any) -> str:
    return f"/api/v1/sessions/{row.id}/transcript"


def test_while_the_stages_run_the_transcript_answers_202_with_progress(
    as_alice: Any, bobs_session: Any
) -> None:
    client, _ = as_alice
    response = client.get(transcript_url(bobs_session))
    assert response.status_code == 202
    assert response.json() == {
        "session_id": str(bobs_session.id),
        "status": "processing",
        "progress": 0,
    }


def test_the_transcript_has_speakers_roles_words_language_and_unclear_spans(
    as_alice: Any,
    bobs_session: Any,
    session: Session,
    database: Database,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    speech: FakeSpeech,
) -> None:
    enrol_alice(session, store, people["alice"])
    run_stages(database, settings, store, speech)
    assert speech.transcriber.heard == [32000]  # the whole recording, 16 kHz mono
    assert speech.diarizer.heard == [32000]

    client, _ = as_alice
    response = client.get(transcript_url(bobs_session))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "en"
    assert body["models"] == ["fake-whisper"]
    said = [(s["speaker"], s["role"], s["text"], s["low_confidence"]) for s in body["segments"]]
    assert said == [
        ("SPEAKER_00", "therapist", "How was your week?", False),
        ("SPEAKER_01", "patient", "I walked every morning.", False),
        ("SPEAKER_01", "patient", "Thank you for watching.", True),
    ]
    assert {"silence", "no_voice"} <= set(body["segments"][2]["flags"])
    first_word = body["segments"][0]["words"][0]
    assert first_word == {
        "start": 0.0,
        "end": 0.15,
        "text": "How",
        "probability": 0.9,
        "overlap": False,
    }
    speakers = {s["speaker"]: s for s in body["speakers"]}
    assert speakers["SPEAKER_00"]["source"] == "voiceprint"
    assert speakers["SPEAKER_00"]["confidence"] >= 0.6

    stored = session.execute(text("SELECT body_enc FROM transcripts")).scalar_one()
    assert b"walked" not in bytes(stored)
    stored = session.execute(text("SELECT body_enc FROM attributions")).scalar_one()
    assert b"walked" not in bytes(stored)
    reads = session.exec(select(AuditEvent).where(AuditEvent.action == "transcript.read")).all()
    assert [(e.actor_id, e.patient_id) for e in reads] == [
        (people["alice"].id, bobs_session.patient_id)
    ]


def test_without_an_enrolled_voice_roles_are_a_low_confidence_guess(
    as_alice: Any,
    transcribed: Any,
    speech: FakeSpeech,
) -> None:
    client, _ = as_alice
    speakers = client.get(transcript_url(transcribed)).json()["speakers"]
    assert {(s["source"], s["confidence"]) for s in speakers} == {("talk_time", 0.5)}
    assert speech.encoder.heard == []  # nothing to compare with, so no voiceprints made


def test_only_a_therapist_of_the_patient_reads_the_transcript(
    browser: Browser,
    transcribed: Any,
) -> None:
    dora, _ = signed_in(browser, "dora@clinic.example")
    assert dora.get(transcript_url(transcribed)).status_code == 404
    bob, _ = signed_in(browser, "bob@portal.example")
    assert bob.get(transcript_url(transcribed)).status_code == 403
    alice, _ = signed_in(browser, "alice@clinic.example")
    missing = alice.get(f"/api/v1/sessions/{uuid.uuid4()}/transcript")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_after_transcription_consent_is_withdrawn_the_transcript_is_forbidden(
    as_alice: Any,
    transcribed: Any,
    session: Session,
) -> None:
    consent.change(
        session,
        CLINIC_IT,
        transcribed.patient_id,
        [Purpose.transcription],
        ConsentStatus.revoked,
        ConsentMethod.paper,
    )
    session.commit()
    client, _ = as_alice
    response = client.get(transcript_url(transcribed))
    assert response.status_code == 403
    assert "transcription" in response.json()["detail"]


def test_a_session_without_a_recording_or_with_a_stopped_stage_says_so(
    as_alice: Any,
    bobs_session: Any,
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    client, _ = as_alice
    empty = consented_session(session, bob.id, people["alice"].id, Purpose.transcription)
    assert client.get(transcript_url(empty)).status_code == 404

    lease = jobs.claim(session, "w", 60)
    assert lease is not None
    assert lease.stage == "probe"
    jobs.fail(session, lease, "PermanentError", permanent=True, backoff_seconds=0)
    response = client.get(transcript_url(bobs_session))
    assert response.status_code == 409
    assert "see its jobs" in response.json()["detail"]


def test_exports_are_webvtt_srt_and_plain_text_downloads(
    as_alice: Any,
    transcribed: Any,
) -> None:
    client, _ = as_alice
    vtt = client.get(transcript_url(transcribed), params={"format": "vtt"})
    assert vtt.status_code == 200
    assert vtt.headers["content-type"].startswith("text/vtt")
    assert f"transcript-{transcribed.id}.vtt" in vtt.headers["content-disposition"]
    assert vtt.text.startswith("WEBVTT")
    assert "[unclear] Thank you for watching." in vtt.text
    srt = client.get(transcript_url(transcribed), params={"format": "srt"})
    assert "00:00:00,000 --> " in srt.text
    txt = client.get(transcript_url(transcribed), params={"format": "txt"})
    assert "I walked every morning." in txt.text
    bad = client.get(transcript_url(transcribed), params={"format": "docx"})
    assert bad.status_code == 400


def test_relabelling_a_speaker_changes_its_role_and_reruns_only_later_stages(
    as_alice: Any,
    transcribed: Any,
    session: Session,
) -> None:
    [recording_id] = session.execute(text("SELECT id FROM recordings")).scalars().all()

    client, csrf = as_alice
    response = client.post(
        f"/api/v1/sessions/{transcribed.id}/speakers",
        json={"speaker": "SPEAKER_00", "role": "patient"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 201, response.text
    assert response.json() == {"requeued": ["chunk", "embed", "report"]}
    session.expire_all()
    states = {
        job.stage: (job.state, job.attempts) for job in jobs.for_recording(session, recording_id)
    }
    assert states["chunk"] == ("queued", 0)
    assert states["transcribe"] == ("succeeded", 1)
    assert states["diarize"] == ("succeeded", 1)

    speakers = {s["speaker"]: s for s in client.get(transcript_url(transcribed)).json()["speakers"]}
    assert (speakers["SPEAKER_00"]["role"], speakers["SPEAKER_00"]["source"]) == (
        "patient",
        "therapist",
    )
    assert session.exec(select(AuditEvent).where(AuditEvent.action == "transcript.relabel")).one()

    for bad, status in (
        ({"speaker": "SPEAKER_09", "role": "patient"}, 404),
        ({"speaker": "SPEAKER_00", "role": "doctor"}, 422),
    ):
        refused = client.post(
            f"/api/v1/sessions/{transcribed.id}/speakers",
            json=bad,
            headers={"X-CSRF-Token": csrf},
        )
        assert refused.status_code == status, refused.text


def test_a_therapist_enrols_and_withdraws_their_voice(
    as_alice: Any,
    browser: Browser,
    session: Session,
    store: KeyStore,
    people: dict[str, UserPublic],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backends, "voice_encoder_for", lambda _: FakeEncoder())
    client, csrf = as_alice
    headers = {"X-CSRF-Token": csrf}
    assert client.get("/api/v1/me/voice").json()["enrolled"] is False
    short = client.put("/api/v1/me/voice", content=make_audio("wav", 2.0), headers=headers)
    assert short.status_code == 422
    assert "at least 5 seconds" in short.json()["detail"]
    noise = client.put("/api/v1/me/voice", content=b"not audio at all" * 100, headers=headers)
    assert noise.status_code == 400
    done = client.put("/api/v1/me/voice", content=make_audio("wav", 6.0), headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["enrolled"] is True
    assert done.json()["model_id"] == "fake-encoder"
    sealed = session.execute(text("SELECT body_enc FROM voiceprints")).scalar_one()
    assert b"1.0" not in bytes(sealed)

    patient, patient_csrf = signed_in(browser, "bob@portal.example")
    refused = patient.put(
        "/api/v1/me/voice", content=make_audio("wav", 6.0), headers={"X-CSRF-Token": patient_csrf}
    )
    assert refused.status_code == 403

    assert client.delete("/api/v1/me/voice", headers=headers).status_code == 204
    assert client.get("/api/v1/me/voice").json()["enrolled"] is False
    with pytest.raises(KeyMissing):
        store.get(people["alice"].id)  # the key that sealed it is gone too


def test_the_transcript_page_shows_speakers_times_unclear_passages_and_relabels(
    as_alice: Any,
    bobs_session: Any,
    database: Database,
    settings: Settings,
    store: KeyStore,
    speech: FakeSpeech,
) -> None:
    client, _ = as_alice
    page_url = f"/console/sessions/{bobs_session.id}/transcript"
    busy = client.get(page_url)
    assert busy.status_code == 200
    assert 'data-refresh-seconds="5"' in busy.text

    run_stages(database, settings, store, speech)
    page = client.get(page_url)
    assert page.status_code == 200
    assert "I walked every morning." in page.text
    assert "unclear (" in page.text
    assert '<span class="when">00:00</span>' in page.text
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    moved = client.post(
        f"/console/sessions/{bobs_session.id}/speakers",
        data={"csrf_token": token, "speaker": "SPEAKER_01", "role": "other"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    after = client.get(moved.headers["location"])
    assert "Speaker relabelled." in after.text
    assert "set by therapist" in after.text
    forged = client.post(
        f"/console/sessions/{bobs_session.id}/speakers",
        data={"csrf_token": "forged", "speaker": "SPEAKER_01", "role": "patient"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    speakers = client.get(transcript_url(bobs_session)).json()["speakers"]
    assert {s["speaker"]: s["role"] for s in speakers}["SPEAKER_01"] == "other"  # unchanged


def test_a_therapist_enrols_their_voice_from_the_console(
    as_alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backends, "voice_encoder_for", lambda _: FakeEncoder())
    client, _ = as_alice
    page = client.get("/console/voice")
    assert page.status_code == 200
    assert "Not enrolled." in page.text
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]

    def send(audio: bytes, csrf: str = token) -> Any:
        return client.post(
            "/console/voice",
            data={"csrf_token": csrf},
            files={"recording": ("me.wav", audio, "audio/wav")},
            follow_redirects=False,
        )

    too_short = send(make_audio("wav", 2.0))
    assert too_short.status_code == 422
    assert "at least 5 seconds" in too_short.text
    assert send(make_audio("wav", 6.0), csrf="forged").status_code == 403
    assert "Not enrolled." in client.get("/console/voice").text

    enrolled = send(make_audio("wav", 6.0))
    assert enrolled.status_code == 303
    shown = client.get(enrolled.headers["location"])
    assert "Your voice is enrolled." in shown.text
    assert "Enrolled from 6 seconds of speech (fake-encoder)" in shown.text

    withdrawn = client.post(
        "/console/voice/withdraw", data={"csrf_token": token}, follow_redirects=False
    )
    assert withdrawn.status_code == 303
    assert "Not enrolled." in client.get("/console/voice").text
