"""The console as a browser without JavaScript sees it: forms, redirects, CSRF in a hidden
field. The consent page is also driven in a real Chromium (tests/test_browser.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.jobs import service as jobs
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import PASSWORD, Browser, add_recording, consented_session

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_login(client: TestClient[Litestar], email: str, **extra: str) -> Any:
    return client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, **extra},
        follow_redirects=False,
    )


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture
def alice_console(browser: Browser, people: dict[str, UserPublic]) -> TestClient[Litestar]:
    client = browser()
    assert console_login(client, "alice@clinic.example").status_code == 303
    return client


def test_pages_send_a_signed_out_browser_to_the_sign_in_form(browser: Browser) -> None:
    client = browser()
    response = client.get("/console/patients", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    form = client.get("/console/login")
    assert form.status_code == 200
    assert '<form method="post" action="/console/login"' in form.text
    assert "script" not in form.text.lower()  # works without JavaScript; CSP allows none inline


def test_a_wrong_password_shows_the_form_again_with_a_reason(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    response = console_login(browser(), "alice@clinic.example", password="wrong")
    assert response.status_code == 401
    assert "invalid e-mail address or password" in response.text
    assert 'value="alice@clinic.example"' in response.text


def test_a_therapist_sees_her_patients_and_gives_and_withdraws_consent_in_one_step_each(
    alice_console: TestClient[Litestar], bob: PatientPublic, session: Session
) -> None:
    patients = alice_console.get("/console/patients")
    assert "Bob Brennan" in patients.text
    assert "Charlie Castellanos" in patients.text
    page = alice_console.get(f"/console/patients/{bob.id}/consent")
    assert "Not asked" in page.text
    token = csrf_of(page)
    url = f"/console/patients/{bob.id}/consent"

    given = alice_console.post(
        url,
        data={"csrf_token": token, "purpose": "recording", "action": "granted", "method": "paper"},
        follow_redirects=False,
    )
    assert given.status_code == 303
    assert consent.is_granted(session, bob.id, Purpose.recording)
    shown = alice_console.get(given.headers["location"])
    assert "Consent recorded." in shown.text
    assert "Withdraw recording" in shown.text

    withdrawn = alice_console.post(
        url,
        data={"csrf_token": token, "purpose": "recording", "action": "revoked"},
        follow_redirects=False,
    )
    assert withdrawn.status_code == 303
    assert not consent.is_granted(session, bob.id, Purpose.recording)
    history = consent.history(session, bob.id)
    assert [(e.status, e.method) for e in history] == [
        ("granted", "paper"),
        ("revoked", "in_person"),
    ]


def test_a_form_without_the_csrf_token_changes_nothing(
    alice_console: TestClient[Litestar], bob: PatientPublic, session: Session
) -> None:
    response = alice_console.post(
        f"/console/patients/{bob.id}/consent",
        data={"purpose": "recording", "action": "granted"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert consent.history(session, bob.id) == []


def test_another_therapists_patient_is_not_found_and_the_attempt_is_audited(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    dora = browser()
    assert console_login(dora, "dora@clinic.example").status_code == 303
    assert "Bob Brennan" not in dora.get("/console/patients").text
    response = dora.get(f"/console/patients/{bob.id}/consent")
    assert response.status_code == 404
    assert "Bob Brennan" not in response.text


def test_the_session_page_shows_each_stage_with_its_progress(
    alice_console: TestClient[Litestar],
    session: Session,
    settings: Settings,
    store: KeyStore,
    bob: PatientPublic,
    people: dict[str, UserPublic],
) -> None:
    made = consented_session(session, bob.id, people["alice"].id)
    add_recording(session, settings, store, made, make_audio())
    listed = alice_console.get(f"/console/patients/{bob.id}/sessions")
    assert "2026-11-14" in listed.text
    page = alice_console.get(f"/console/sessions/{made.id}")
    assert page.status_code == 200
    assert "Checking the audio" in page.text
    assert "queued" in page.text
    assert 'http-equiv="refresh"' in page.text  # reloads itself while work is under way


def test_an_admin_must_enrol_a_second_factor_then_retries_a_dead_job(
    browser: Browser,
    people: dict[str, UserPublic],
    session: Session,
    settings: Settings,
    store: KeyStore,
    bob: PatientPublic,
) -> None:
    import base64

    from appliance.auth import totp

    adam = browser()
    signed = console_login(adam, "adam@clinic.example")
    assert signed.headers["location"] == "/console/totp"
    assert adam.get("/console/jobs", follow_redirects=False).headers["location"] == "/console/totp"
    start = adam.get("/console/totp")
    shown = adam.post("/console/totp", data={"csrf_token": csrf_of(start)})
    secret = re.search(r'<code class="secret"[^>]*>([A-Z2-7= ]+)</code>', shown.text)
    assert secret
    code = totp.code_for(base64.b32decode(secret.group(1).replace(" ", "")))
    confirmed = adam.post(
        "/console/totp/confirm",
        data={"csrf_token": csrf_of(shown), "code": code},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303

    made = consented_session(session, bob.id, people["alice"].id)
    added = add_recording(session, settings, store, made, make_audio())
    (job_id, _, _) = added.jobs[0]
    lease = jobs.claim(session, "w", 60)
    assert lease is not None
    jobs.fail(session, lease, "RuntimeError", permanent=True, backoff_seconds=0)

    page = adam.get("/console/jobs?state=dead")
    assert f'id="job-{job_id}"' in page.text
    assert "Retry probe" in page.text
    retried = adam.post(
        f"/console/jobs/{job_id}/retry", data={"csrf_token": csrf_of(page)}, follow_redirects=False
    )
    assert retried.status_code == 303
    session.expire_all()
    assert jobs.for_recording(session, added.recording_id)[0].state == "queued"
    assert "Queued again." in adam.get(retried.headers["location"]).text

    alice = browser()
    console_login(alice, "alice@clinic.example")
    assert alice.get("/console/jobs").status_code == 403  # administrators only


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}],
    ids=["fetch-metadata", "origin"],
)
def test_a_sign_in_posted_from_another_site_is_refused(
    browser: Browser, people: dict[str, UserPublic], headers: dict[str, str]
) -> None:
    response = browser().post(
        "/console/login",
        data={"email": "alice@clinic.example", "password": PASSWORD},
        headers=headers,
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "Cross-site sign-in refused" in response.text
