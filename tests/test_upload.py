"""Uploading recordings: streamed, capped, proven by decoding, encrypted, idempotent, consented."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session

from appliance.app import create_app
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import FileContext, decrypt_file
from appliance.db import Database
from appliance.pipeline.stages import pipeline
from appliance.settings import Settings, load_settings
from tests.audio import FORMATS, make_audio
from tests.conftest import (
    CLINIC_IT,
    Browser,
    consented_session,
    login,
    run_cli,
    signed_in,
    signed_in_admin,
)


@pytest.fixture
def bobs_session(session: Session, people: dict[str, UserPublic], bob: PatientPublic) -> str:
    """A session of bob's with alice, and bob's consent to recording."""
    return str(consented_session(session, bob.id, people["alice"].id).id)


@pytest.fixture
def as_alice(browser: Browser, people: dict[str, UserPublic]) -> tuple[TestClient[Litestar], str]:
    return signed_in(browser, "alice@clinic.example")


def upload(
    client: TestClient[Litestar], csrf: str, session_id: str, body: bytes, **headers: str
) -> Any:
    return client.post(
        f"/api/v1/sessions/{session_id}/recording",
        content=body,
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream", **headers},
    )


def recording_files(settings: Settings, patient: PatientPublic) -> list[Path]:
    folder = settings.files_dir / str(patient.id) / "recordings"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_each_supported_format_is_accepted_and_stored_encrypted(
    as_alice: Any,
    bobs_session: str,
    settings: Settings,
    store: KeyStore,
    bob: PatientPublic,
    kind: str,
) -> None:
    client, csrf = as_alice
    audio = make_audio(kind, seconds=2.0)
    response = upload(client, csrf, bobs_session, audio)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["session_id"] == bobs_session
    assert 1.9 <= body["duration_seconds"] <= 2.2
    [stored] = recording_files(settings, bob)
    assert stored.name == f"{body['recording_id']}.rec"
    assert audio[:16] not in stored.read_bytes()
    context = FileContext("recording", uuid.UUID(body["recording_id"]), bob.id)
    plain = b"".join(decrypt_file(patient_cipher(store, bob.id).dek, stored, context))
    assert hashlib.sha256(plain).hexdigest() == hashlib.sha256(audio).hexdigest()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" * 20, 415),
        (b"Dear diary, today we talked about homework.\n" * 50, 415),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8, 422),
    ],
)
def test_bad_uploads_get_the_right_problem_and_leave_nothing(
    as_alice: Any,
    bobs_session: str,
    settings: Settings,
    session: Session,
    bob: PatientPublic,
    body: bytes,
    status: int,
) -> None:
    client, csrf = as_alice
    response = upload(client, csrf, bobs_session, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert recording_files(settings, bob) == []
    assert session.execute(text("SELECT count(*) FROM recordings")).scalar_one() == 0


def test_a_truncated_recording_is_a_422(
    as_alice: Any, bobs_session: str, settings: Settings, bob: PatientPublic
) -> None:
    client, csrf = as_alice
    audio = make_audio("m4a", seconds=3.0)
    assert upload(client, csrf, bobs_session, audio[: len(audio) // 2]).status_code == 422
    assert recording_files(settings, bob) == []


@pytest.fixture
def capped(
    settings: Settings, database: Database, people: dict[str, UserPublic]
) -> Iterator[tuple[TestClient[Litestar], str]]:
    small = load_settings(
        data_dir=settings.data_dir,
        database=settings.database.model_dump(),
        recordings={"max_upload_mb": 1},
    )
    with TestClient(app=create_app(small, database)) as client:
        yield client, login(client, "alice@clinic.example").json()["csrf_token"]


def test_an_oversized_upload_is_stopped_while_streaming(
    capped: Any, bobs_session: str, settings: Settings, bob: PatientPublic
) -> None:
    client, csrf = capped

    def chunks() -> Iterator[bytes]:
        yield make_audio("wav", seconds=1)
        for _ in range(40):
            yield bytes(64 * 1024)

    response = client.post(
        f"/api/v1/sessions/{bobs_session}/recording",
        content=chunks(),
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 413
    assert recording_files(settings, bob) == []
    declared = upload(client, csrf, bobs_session, b"x", **{"Content-Length": str(2 * 1024 * 1024)})
    assert declared.status_code == 413, declared.text  # refused on the declared length alone


def test_a_path_like_file_name_never_reaches_the_disk(
    as_alice: Any, bobs_session: str, settings: Settings, bob: PatientPublic, session: Session
) -> None:
    client, csrf = as_alice
    response = client.post(
        f"/api/v1/sessions/{bobs_session}/recording?filename=../../etc/passwd",
        content=make_audio("wav", 1),
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 202
    [stored] = recording_files(settings, bob)
    assert stored.name == f"{response.json()['recording_id']}.rec"
    sealed = session.execute(text("SELECT original_name_enc FROM recordings")).scalar_one()
    assert b"passwd" not in bytes(sealed)


def test_one_idempotency_key_makes_one_recording(
    as_alice: Any, bobs_session: str, settings: Settings, bob: PatientPublic, session: Session
) -> None:
    client, csrf = as_alice
    audio = make_audio("wav", 1)
    first = upload(client, csrf, bobs_session, audio, **{"Idempotency-Key": "upload-1"})
    second = upload(client, csrf, bobs_session, audio, **{"Idempotency-Key": "upload-1"})
    assert first.json()["recording_id"] == second.json()["recording_id"]
    assert second.json()["replayed"] is True
    assert second.json()["jobs"] == first.json()["jobs"]  # the same jobs, not new ones
    assert len(recording_files(settings, bob)) == 1
    assert session.execute(text("SELECT count(*) FROM recordings")).scalar_one() == 1
    jobs = session.execute(text("SELECT count(*) FROM jobs")).scalar_one()
    assert jobs == len(pipeline())  # one per stage, once


def test_an_upload_answers_with_its_jobs_and_the_status_follows_them(
    as_alice: Any,
    bobs_session: str,
    database: Database,
    settings: Settings,
    store: KeyStore,
    browser: Browser,
) -> None:
    from appliance.jobs.runner import drain

    client, csrf = as_alice
    accepted = upload(client, csrf, bobs_session, make_audio("m4a")).json()
    assert [(j["stage"], j["state"]) for j in accepted["jobs"]] == [
        (stage, "queued") for stage in pipeline()
    ]
    status = client.get(f"/api/v1/sessions/{bobs_session}/status").json()
    [recording] = status["recordings"]
    assert recording["recording_id"] == accepted["recording_id"]
    assert [(s["id"], s["state"], s["progress"]) for s in recording["stages"]] == [
        (job["id"], "queued", 0) for job in accepted["jobs"]
    ]
    assert recording["done"] is False

    drain(database, settings, store, "test-worker", pipeline())
    status = client.get(f"/api/v1/sessions/{bobs_session}/status").json()
    [recording] = status["recordings"]
    assert (recording["stages"][0]["state"], recording["stages"][0]["progress"]) == (
        "succeeded",
        100,
    )
    # bob consented to recording only: the speech stages end cancelled, and that is the end.
    assert {s["state"] for s in recording["stages"][1:]} == {"cancelled"}
    assert recording["done"] is True
    assert status["status"] == "recorded"

    dora, _ = signed_in(browser, "dora@clinic.example")  # not bob's therapist
    assert dora.get(f"/api/v1/sessions/{bobs_session}/status").status_code == 404


def test_administrators_list_dead_jobs_and_retry_them_over_the_api(
    as_alice: Any, bobs_session: str, session: Session, browser: Browser
) -> None:
    from appliance.jobs import service as jobs

    client, csrf = as_alice
    job_id = upload(client, csrf, bobs_session, make_audio()).json()["jobs"][0]["id"]
    lease = jobs.claim(session, "w", 60)
    assert lease is not None
    jobs.fail(session, lease, "RuntimeError", permanent=True, backoff_seconds=0)

    assert client.get("/api/v1/jobs").status_code == 403  # therapists do not run the machine
    admin, admin_csrf = signed_in_admin(browser)
    dead = admin.get("/api/v1/jobs", params={"state": "dead"}).json()
    assert [(j["id"], j["last_error"]) for j in dead] == [(job_id, "RuntimeError")]
    retried = admin.post(f"/api/v1/jobs/{job_id}/retry", headers={"X-CSRF-Token": admin_csrf})
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["attempts"]) == ("queued", 0)
    again = admin.post(f"/api/v1/jobs/{job_id}/retry", headers={"X-CSRF-Token": admin_csrf})
    assert again.status_code == 409  # a queued job is not retried twice


def test_without_consent_to_recording_the_upload_is_a_403_and_audited(
    as_alice: Any, bobs_session: str, session: Session, settings: Settings, bob: PatientPublic
) -> None:
    consent.change(
        session,
        CLINIC_IT,
        bob.id,
        [Purpose.recording],
        ConsentStatus.revoked,
        ConsentMethod.in_person,
    )
    session.commit()
    client, csrf = as_alice
    response = upload(client, csrf, bobs_session, make_audio("wav", 1))
    assert response.status_code == 403
    assert "recording" in response.json()["detail"]
    assert recording_files(settings, bob) == []
    denied = (
        session.execute(
            text(
                "SELECT details::text FROM audit_events WHERE action = 'consent.enforce' "
                "AND outcome = 'denied'"
            )
        )
        .scalars()
        .all()
    )
    assert [json.loads(d) for d in denied] == [{"purpose": "recording"}]


def test_patients_and_other_therapists_cannot_upload(browser: Browser, bobs_session: str) -> None:
    bob_client, bob_csrf = signed_in(browser, "bob@portal.example")
    assert upload(bob_client, bob_csrf, bobs_session, make_audio("wav", 1)).status_code == 403
    dora, dora_csrf = signed_in(browser, "dora@clinic.example")
    assert upload(dora, dora_csrf, bobs_session, make_audio("wav", 1)).status_code == 404


def test_ingest_from_the_command_line_takes_the_same_path(
    bobs_session: str, settings: Settings, bob: PatientPublic, tmp_path: Path
) -> None:
    env = {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
    }
    audio = tmp_path / "session.mp3"
    audio.write_bytes(make_audio("mp3", 2))
    done = run_cli("ingest", "--session", bobs_session, str(audio), "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["duration_seconds"] > 1.9
    fake = tmp_path / "notes.wav"
    fake.write_text("not audio at all, just a text file with a .wav name" * 10)
    refused = run_cli("ingest", "--session", bobs_session, str(fake), env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip() == "Error: the upload is not an audio or video recording"
    assert len(recording_files(settings, bob)) == 1
