"""The speech pipeline with the real packaged models (faster-whisper tiny.en, Silero VAD,
Resemblyzer) on the committed two-voice dialogue: `ingest --wait` ends with a transcript whose
words, speakers and roles are right; the eval and bench commands measure it."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import open_database
from appliance.jobs.runner import wait_for_recording
from appliance.pipeline import transcripts, voices
from appliance.pipeline.backends import voice_encoder_for
from appliance.pipeline.evaluate import read_rttm, word_error_rate
from appliance.pipeline.schemas import TranscriptPublic
from appliance.recordings import service as sessions
from appliance.recordings.models import Recording
from appliance.settings import Settings
from tests.conftest import CLINIC_IT, REPO, consented_session, run_cli

pytestmark = [pytest.mark.model, pytest.mark.slow]

DEMO = REPO / "demo"


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
    }


def reference_roles() -> list[tuple[float, float, str]]:
    roles = dict(line.split() for line in (DEMO / "dialogue.roles").read_text().splitlines())
    rows, _ = read_rttm(DEMO / "dialogue.rttm")
    return [(start, end, roles[label]) for start, end, label in rows]


def role_at(moment: float, reference: list[tuple[float, float, str]]) -> str | None:
    return next((role for start, end, role in reference if start <= moment <= end), None)


def test_an_ingested_session_ends_with_the_right_words_speakers_and_roles(
    env: dict[str, str],
    settings: Settings,
    session: Session,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    actor = Actor(role="therapist", user_id=alice.id)
    enrolment = (DEMO / "therapist-voice.ogg").read_bytes()
    voices.enrol(session, store, voice_encoder_for(settings), actor, io.BytesIO(enrolment))
    row = consented_session(session, bob.id, alice.id, Purpose.recording, Purpose.transcription)
    session.commit()

    result = run_cli(
        "ingest", "--session", str(row.id), str(DEMO / "dialogue.ogg"), "--wait", env=env
    )
    assert result.returncode == 0, result.stderr
    for stage in ("probe", "transcribe", "diarize", "attribute"):
        assert f"{stage}: succeeded" in result.stdout

    found = transcripts.read(session, store, actor, row)
    assert isinstance(found, TranscriptPublic)
    assert found.language == "en"
    hypothesis = " ".join(s.text for s in found.segments)
    assert word_error_rate((DEMO / "dialogue.txt").read_text(), hypothesis)["wer"] < 0.10
    assert not any(s.low_confidence for s in found.segments)

    assert sorted(s.role for s in found.speakers) == ["patient", "therapist"]
    therapist = next(s for s in found.speakers if s.role == "therapist")
    assert therapist.source == "voiceprint"
    reference = reference_roles()
    words = [w for s in found.segments for w in s.words]
    right = sum(
        role_at((w.start + w.end) / 2, reference) in (None, segment.role)
        for segment in found.segments
        for w in segment.words
    )
    assert right / len(words) >= 0.95  # words whose speaker's role matches the script

    # Without patient_chat consent nothing was embedded; with it (and the session released),
    # the real embedder indexes it and search finds the homework with its minute.
    assert "embed: cancelled" in result.stdout
    consent.change(session, CLINIC_IT, bob.id, [Purpose.patient_chat], ConsentStatus.granted,
                   ConsentMethod.paper)  # fmt: skip
    sessions.release(session, actor, row)
    session.commit()
    recording = session.exec(select(Recording).where(Recording.session_id == row.id)).one()
    with open_database(settings) as database:  # granting the consent queued the embed job again
        finished = {j.stage: j.state for j in wait_for_recording(settings, database, recording.id)}
    assert finished["embed"] == "succeeded"
    searched = run_cli("search", "--patient", str(bob.id), "--json",
                       "What homework did we agree on?", env=env)  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    best = json.loads(searched.stdout)["results"][0]
    assert best["session_id"] == str(row.id)
    assert "walk" in best["excerpt"] or "breathing" in best["excerpt"]
    assert json.loads(searched.stdout)["model"] == "sentence-transformers/all-minilm-l6-v2"


def test_eval_asr_prints_the_word_error_rate_as_json(env: dict[str, str]) -> None:
    result = run_cli(
        "eval", "asr", str(DEMO / "dialogue.ogg"), str(DEMO / "dialogue.txt"), "--json", env=env
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert 0.0 <= measured["wer"] < 0.10
    assert measured["reference_words"] == 128


def test_eval_diarization_meets_its_target_on_the_dialogue(env: dict[str, str]) -> None:
    result = run_cli(
        "eval",
        "diarization",
        str(DEMO / "dialogue.ogg"),
        str(DEMO / "dialogue.rttm"),
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["der"] <= 0.15
    assert measured["speakers_found"] == measured["speakers_reference"] == 2


def test_eval_refuses_a_file_that_is_not_an_rttm(env: dict[str, str], tmp_path: Path) -> None:
    bogus = tmp_path / "notes.rttm"
    bogus.write_text("these are not speaker turns\n")
    result = run_cli("eval", "diarization", str(DEMO / "dialogue.ogg"), str(bogus), env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: notes.rttm has no SPEAKER lines"


def test_bench_pipeline_reports_every_stage_beside_the_raw_call(env: dict[str, str]) -> None:
    result = run_cli(
        "bench", "pipeline", str(DEMO / "dialogue.ogg"), "--runs", "1", "--json", env=env
    )
    assert result.returncode == 0, result.stderr
    measured: dict[str, Any] = json.loads(result.stdout)
    names = [row["name"] for row in measured["rows"]]
    assert names[:2] == ["raw faster-whisper transcribe", "raw, sequential instead"]
    assert {"stage: transcribe", "stage: diarize", "stage: attribute"} <= set(names)
    assert all(row["seconds"] > 0 and row["peak_rss_mib"] > 0 for row in measured["rows"])
    assert measured["transcribe_vs_raw"] > 0
