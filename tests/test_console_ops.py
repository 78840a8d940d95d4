"""The console's operations pages, over HTTP with a real database: paper-consent evidence,
the jobs dashboard, model status, key rotation and the audit viewer (with the auditor's
read-only view). Every one of them leaves its trace in the audit log."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import create_engine, text
from sqlmodel import Session, col, select

from appliance.audit.chain import verify_bundle
from appliance.audit.models import AuditEvent
from appliance.audit.service import AuditEntry, record
from appliance.clinic.erasure import erase_patient
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import evidence
from appliance.consent.models import ConsentEvent, ConsentEvidence
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import FileContext, decrypt_file
from appliance.jobs import service as jobs
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import (
    CLINIC_IT,
    PASSWORD,
    Browser,
    add_recording,
    consented_session,
    signed_in_admin,
)

PDF = b"%PDF-1.7\n" + b"Bob Brennan consents to recording and transcription.\n" * 40
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console(browser: Browser, email: str) -> tuple[TestClient[Litestar], str]:
    client = browser()
    signed = client.post(
        "/console/login", data={"email": email, "password": PASSWORD}, follow_redirects=False
    )
    assert signed.status_code == 303, signed.text
    found = CSRF.search(client.get(signed.headers["location"]).text)
    assert found
    return client, found.group(1)


@pytest.fixture
def alice_console(
    browser: Browser, people: dict[str, UserPublic]
) -> tuple[TestClient[Litestar], str]:
    return console(browser, "alice@clinic.example")


@pytest.fixture
def adam_console(
    browser: Browser, people: dict[str, UserPublic]
) -> tuple[TestClient[Litestar], str]:
    return signed_in_admin(browser)


def actions(session: Session, prefix: str) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).where(col(AuditEvent.action).startswith(prefix))
    return list(session.exec(query.order_by(col(AuditEvent.id))))


def upload_paper(
    client: TestClient[Litestar],
    csrf: str,
    patient: PatientPublic,
    body: bytes,
    name: str = "signed-form.pdf",
    purposes: tuple[str, ...] = ("recording", "transcription"),
) -> Any:
    return client.post(
        f"/console/patients/{patient.id}/consent/paper",
        data={"csrf_token": csrf, "purpose": list(purposes), "action": "granted"},
        files={"evidence": (name, body, "application/octet-stream")},
        follow_redirects=False,
    )


def evidence_files(settings: Settings, patient: PatientPublic) -> list[Path]:
    folder = settings.files_dir / str(patient.id) / "consent"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


# Paper-consent evidence ---------------------------------------------------------------


def test_a_paper_consent_with_its_scanned_form_is_stored_encrypted_and_downloads_the_same(
    alice_console: tuple[TestClient[Litestar], str],
    session: Session,
    settings: Settings,
    store: KeyStore,
    bob: PatientPublic,
) -> None:
    client, csrf = alice_console
    sent = upload_paper(client, csrf, bob, PDF)
    assert sent.status_code == 303, sent.text
    ledger = client.get(sent.headers["location"])
    assert "Paper consent recorded with its scanned form." in ledger.text

    rows = list(session.exec(select(ConsentEvidence)))
    assert len(rows) == 1
    row = rows[0]
    assert (row.content_type, row.size_bytes, row.patient_id) == (
        "application/pdf",
        len(PDF),
        bob.id,
    )
    events = list(session.exec(select(ConsentEvent).where(ConsentEvent.patient_id == bob.id)))
    assert {e.purpose for e in events} == {"recording", "transcription"}
    assert {e.evidence_sha256 for e in events} == {row.sha256}
    assert row.consent_event_id in {e.id for e in events}
    assert b"signed-form" not in row.file_name_enc

    [stored] = evidence_files(settings, bob)
    assert b"Bob Brennan" not in stored.read_bytes()
    context = FileContext("consent", row.id, bob.id)
    assert b"".join(decrypt_file(patient_cipher(store, bob.id).dek, stored, context)) == PDF

    link = f"/console/patients/{bob.id}/consent/evidence/{row.id}"
    assert ledger.text.count(link) == 2  # both purposes the one form covers
    download = client.get(link)
    assert download.status_code == 200
    assert download.content == PDF
    assert download.headers["content-type"].startswith("application/pdf")
    assert "signed-form.pdf" in download.headers["content-disposition"]
    [read] = actions(session, "consent.evidence.read")
    assert (read.outcome, read.patient_id, read.object_id) == ("success", bob.id, str(row.id))
    assert "signed-form" not in json.dumps(read.details)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"GIF89a not a consent form", 415),
        (b"", 415),
        (b"%PDF-1.7\n" + b"x" * evidence.MAX_BYTES, 413),  # over the cap by a few bytes
        (b"%PDF-1.7\n" + b"x" * (evidence.MAX_BYTES + 512 * 1024), 413),  # over the body limit
    ],
    ids=["not-a-pdf-jpeg-or-png", "empty", "just-over-the-cap", "far-over-the-cap"],
)
def test_a_wrong_kind_or_oversized_form_is_refused_leaving_no_row_and_no_file(
    alice_console: tuple[TestClient[Litestar], str],
    session: Session,
    settings: Settings,
    bob: PatientPublic,
    body: bytes,
    status: int,
) -> None:
    client, csrf = alice_console
    refused = upload_paper(client, csrf, bob, body, name="looks-fine.pdf")
    assert refused.status_code == status
    assert "<h1" in refused.text or "<main" in refused.text  # a page, not a bare error
    assert list(session.exec(select(ConsentEvidence))) == []
    assert list(session.exec(select(ConsentEvent))) == []
    assert evidence_files(settings, bob) == []


def test_a_form_that_is_an_image_is_accepted_by_its_content_not_its_name(
    alice_console: tuple[TestClient[Litestar], str], session: Session, bob: PatientPublic
) -> None:
    client, csrf = alice_console
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    assert upload_paper(client, csrf, bob, png, name="scan.pdf").status_code == 303
    assert [r.content_type for r in session.exec(select(ConsentEvidence))] == ["image/png"]


def test_erasing_the_patient_deletes_the_evidence_files_too(
    alice_console: tuple[TestClient[Litestar], str],
    session: Session,
    settings: Settings,
    store: KeyStore,
    bob: PatientPublic,
) -> None:
    client, csrf = alice_console
    assert upload_paper(client, csrf, bob, PDF).status_code == 303
    assert len(evidence_files(settings, bob)) == 1
    erase_patient(session, store, CLINIC_IT, settings.files_dir, bob.id)
    session.commit()
    assert evidence_files(settings, bob) == []
    assert list(session.exec(select(ConsentEvidence))) == []


def test_a_therapist_of_other_patients_gets_not_found_for_the_evidence_and_is_audited(
    alice_console: tuple[TestClient[Litestar], str],
    browser: Browser,
    session: Session,
    bob: PatientPublic,
) -> None:
    client, csrf = alice_console
    assert upload_paper(client, csrf, bob, PDF).status_code == 303
    row = session.exec(select(ConsentEvidence)).one()
    dora, _ = console(browser, "dora@clinic.example")
    response = dora.get(f"/console/patients/{bob.id}/consent/evidence/{row.id}")
    assert response.status_code == 404
    assert PDF not in response.content
    [denied] = actions(session, "consent.evidence.read")
    assert (denied.outcome, denied.patient_id) == ("denied", bob.id)


# Jobs dashboard -----------------------------------------------------------------------


def test_the_jobs_dashboard_counts_per_stage_shows_dead_reasons_and_polls_as_json(
    adam_console: tuple[TestClient[Litestar], str],
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    client, _ = adam_console
    made = consented_session(session, bob.id, people["alice"].id)
    added = add_recording(session, settings, store, made, make_audio())
    lease = jobs.claim(session, "w", 60)
    assert lease is not None
    jobs.fail(
        session, lease, "RuntimeError: the probe found no audio", permanent=True, backoff_seconds=0
    )

    page = client.get("/console/jobs")
    assert page.status_code == 200
    assert re.search(r'data-count="probe:dead"[^>]*>1<', page.text)
    assert "the probe found no audio" in page.text
    assert 'src="/static/jobs.js"' in page.text
    assert "<progress" in page.text

    live = client.get("/console/jobs/live.json?state=dead").json()
    assert [(j["stage"], j["state"]) for j in live["jobs"]] == [("probe", "dead")]
    assert live["counts"]["probe"] == {"dead": 1}
    queued = client.get("/console/jobs/live.json?state=queued&stage=transcribe").json()
    assert [j["stage"] for j in queued["jobs"]] == ["transcribe"]
    assert len(added.jobs) == sum(sum(by.values()) for by in live["counts"].values())
    assert client.get("/static/jobs.js").status_code == 200


def test_only_administrators_see_the_jobs_json(
    alice_console: tuple[TestClient[Litestar], str],
) -> None:
    client, _ = alice_console
    assert client.get("/console/jobs/live.json").status_code == 403


# Model status -------------------------------------------------------------------------


def test_model_status_lists_each_configured_model_and_verifies_its_files_on_demand(
    adam_console: tuple[TestClient[Litestar], str], session: Session, settings: Settings
) -> None:
    from appliance.doctor import configured_models
    from appliance.modelfiles.manifest import load_manifest

    client, csrf = adam_console
    page = client.get("/console/models")
    assert page.status_code == 200
    manifest = {entry.name: entry for entry in load_manifest()}
    for name in configured_models(settings):
        assert f'id="model-{name}"' in page.text
        if name in manifest:
            assert manifest[name].files[0].sha256[:16] in page.text
    assert "not checked yet" in page.text
    assert "Not reachable at 127.0.0.1:" in page.text  # no LLM service in this test

    verified = client.post(
        "/console/models/verify", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert verified.status_code == 303
    shown = client.get(verified.headers["location"]).text
    assert "not checked yet" not in shown
    assert "matches the manifest" in shown
    [audited] = actions(session, "models.verify")
    assert audited.actor_role == "admin"


# Key rotation -------------------------------------------------------------------------


def test_rotating_keys_from_the_console_rewraps_every_patient_key_and_is_audited(
    adam_console: tuple[TestClient[Litestar], str],
    session: Session,
    store: KeyStore,
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    client, csrf = adam_console
    before = store.current_kek().id
    bob_key = store.get(bob.id)
    page = client.get("/console/keys")
    assert before in page.text
    assert "<td>2</td>" in page.text  # bob's and charlie's keys under the current KEK

    unconfirmed = client.post("/console/keys/rotate", data={"csrf_token": csrf})
    assert unconfirmed.status_code == 422
    assert store.current_kek().id == before

    rotated = client.post(
        "/console/keys/rotate", data={"csrf_token": csrf, "confirm": "yes"}, follow_redirects=False
    )
    assert rotated.status_code == 303
    after = store.current_kek().id
    assert after != before
    assert store.wrapped_by() == {after}
    assert store.get(bob.id) == bob_key  # the same data key, wrapped anew
    shown = client.get(rotated.headers["location"]).text
    assert after in shown
    assert "retired" in shown

    purged = client.post(
        "/console/keys/purge-retired",
        data={"csrf_token": csrf, "confirm": "yes"},
        follow_redirects=False,
    )
    assert purged.headers["location"] == "/console/keys?done=purged"
    assert set(store.keks()) == {after}
    [rotation] = actions(session, "keys.rotate")
    assert rotation.details == {"old_kek_id": before, "new_kek_id": after, "rewrapped": 2}
    assert rotation.actor_role == "admin"
    [purge] = actions(session, "keys.purge_retired")
    assert purge.details == {"kek_ids": [before]}


# Audit viewer -------------------------------------------------------------------------


def test_the_audit_viewer_filters_pages_with_a_cursor_that_keeps_the_filters(
    adam_console: tuple[TestClient[Litestar], str],
    session: Session,
    settings: Settings,
    bob: PatientPublic,
) -> None:
    client, _ = adam_console
    for number in range(60):
        record(
            session,
            CLINIC_IT,
            AuditEntry("test.filler", "denied" if number % 2 else "success", patient_id=bob.id),
        )
    session.commit()

    first = client.get("/console/audit?action=test.&outcome=&actor=&patient=&date_from=&date_to=")
    assert first.status_code == 200
    assert first.text.count("<code>test.filler</code>") == 50
    older = re.search(r'href="/console/audit\?([^"]+)" rel="next"', first.text)
    assert older
    assert "action=test." in older.group(1)
    assert "cursor=" in older.group(1)
    second = client.get(f"/console/audit?{older.group(1).replace('&amp;', '&')}")
    assert second.text.count("<code>test.filler</code>") == 10
    assert 'rel="next"' not in second.text

    denied = client.get(f"/console/audit?action=test.&outcome=denied&patient={bob.id}")
    assert denied.text.count("<code>test.filler</code>") == 30
    today = datetime.now(ZoneInfo(settings.clinic.timezone)).date()
    in_range = client.get(f"/console/audit?action=test.&date_from={today}&date_to={today}")
    assert in_range.text.count("<code>test.filler</code>") == 50
    yesterday = today - timedelta(days=1)
    before = client.get(f"/console/audit?action=test.&date_to={yesterday}")
    assert "<code>test.filler</code>" not in before.text
    assert "takes a patient id" in client.get("/console/audit?patient=bob").text
    views = actions(session, "audit.view")
    assert len(views) == 6
    assert views[2].details == {
        "filters": ["action", "outcome", "patient"],
        "rows": 30,
        "paged": False,
    }


def test_verify_now_checks_the_live_chain_and_export_downloads_a_verifiable_bundle(
    adam_console: tuple[TestClient[Litestar], str], session: Session, settings: Settings
) -> None:
    client, csrf = adam_console
    exported = client.post("/console/audit/export", data={"csrf_token": csrf})
    assert exported.status_code == 200
    assert exported.headers["content-disposition"].startswith('attachment; filename="audit-export-')
    bundle = exported.json()
    verdict = verify_bundle(bundle)
    assert verdict.ok
    assert verdict.checkpoints == 1
    assert bundle["entries"][-1]["action"] == "audit.export"

    verified = client.get("/console/audit/verify")
    assert "Verified: the chain of" in verified.text
    assert "1 signed checkpoint verifies" in verified.text
    [check] = actions(session, "audit.verify")
    assert check.details["ok"] is True

    owner = create_engine(settings.database.admin_url or "")
    with owner.begin() as conn:  # what an intruder with the owner's password could do
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_events SET action = 'x' WHERE action = 'audit.export'"))
    owner.dispose()
    assert "FAILS verification" in client.get("/console/audit/verify").text


def test_the_auditor_lands_on_the_audit_log_and_sees_no_clinical_pages(
    browser: Browser, people: dict[str, UserPublic], session: Session, bob: PatientPublic
) -> None:
    client = browser()
    signed = client.post(
        "/console/login",
        data={"email": "audrey@clinic.example", "password": PASSWORD},
        follow_redirects=False,
    )
    assert signed.headers["location"] == "/console/audit"
    page = client.get("/console/audit")
    assert page.status_code == 200
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page.text, re.S)
    assert nav
    assert re.findall(r'href="([^"]+)"', nav.group(1)) == ["/console/audit"]
    for path in (
        "/console/patients",
        f"/console/patients/{bob.id}/consent",
        "/console/jobs",
        "/console/models",
        "/console/keys",
        "/console/messages",
    ):
        assert client.get(path).status_code == 403, path
    csrf = CSRF.search(page.text)
    assert csrf
    assert (
        client.post("/console/audit/export", data={"csrf_token": csrf.group(1)}).status_code == 200
    )
    assert "Verified" in client.get("/console/audit/verify").text
    audited = {(e.action, e.actor_role) for e in actions(session, "audit.")}
    assert {
        ("audit.view", "auditor"),
        ("audit.export", "auditor"),
        ("audit.verify", "auditor"),
    } <= audited
