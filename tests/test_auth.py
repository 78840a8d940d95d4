"""Sign-in, sessions, CSRF, throttling, second factor, API keys and who may see which patient."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlmodel import Session

from appliance.app import create_app
from appliance.auth import apikeys, throttle, totp
from appliance.auth.service import SignInRefused, set_active, sign_in
from appliance.clinic.erasure import erase_patient
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.service import keystore_for
from appliance.db import Database
from appliance.errors import TooManyRequests
from appliance.settings import Settings, load_settings, read_secret_file
from tests.conftest import CLINIC_IT, PASSWORD, Browser, login, signed_in

COOKIE = "appliance_session"


def test_sign_in_sets_a_private_cookie_and_me_answers(
    client: TestClient[Litestar], people: dict[str, UserPublic]
) -> None:
    response = login(client, "alice@clinic.example")
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/" in cookie
    me = client.get("/api/v1/auth/me").json()
    assert me["user"]["email"] == "alice@clinic.example"
    assert me["csrf_token"] == response.json()["csrf_token"]


def test_with_secure_cookies_the_cookie_is_host_prefixed_and_secure(
    settings: Settings, database: Database, people: dict[str, UserPublic]
) -> None:
    secure = load_settings(
        data_dir=settings.data_dir,
        database=settings.database.model_dump(),
        web={"cookie_secure": True},
    )
    with TestClient(
        app=create_app(secure, database), base_url="https://testserver.local"
    ) as client:
        cookie = login(client, "alice@clinic.example").headers["set-cookie"]
    assert cookie.startswith("__Host-appliance_session=")
    assert "Secure" in cookie


def test_unknown_user_and_wrong_password_get_the_same_answer(
    client: TestClient[Litestar], people: dict[str, UserPublic]
) -> None:
    unknown = login(client, "nobody@clinic.example")
    wrong = login(client, "alice@clinic.example", "not the passphrase")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]


def test_a_planted_session_cookie_is_replaced_at_sign_in(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    """Session fixation: an attacker's own valid token planted in the victim's browser."""
    attacker, _ = signed_in(browser, "bob@portal.example")
    planted = attacker.cookies[COOKIE]
    victim = browser()
    victim.cookies.set(COOKIE, planted, domain="testserver.local")
    assert login(victim, "alice@clinic.example").status_code == 200
    assert victim.cookies.get(COOKIE, domain="testserver.local") != planted
    assert attacker.get("/api/v1/auth/me").status_code == 401


def test_a_state_changing_request_without_the_csrf_token_is_refused(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client, csrf = signed_in(browser, "alice@clinic.example")
    refused = client.post("/api/v1/auth/logout")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    wrong = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_a_cross_site_sign_in_is_refused(
    client: TestClient[Litestar], people: dict[str, UserPublic]
) -> None:
    refused = client.post(
        "/api/v1/auth/login",
        headers={"Origin": "http://evil.example"},
        json={"email": "alice@clinic.example", "password": PASSWORD},
    )
    assert refused.status_code == 403


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
def test_an_idle_or_expired_session_is_a_401(
    browser: Browser, session: Session, people: dict[str, UserPublic], column: str
) -> None:
    client, _ = signed_in(browser, "alice@clinic.example")
    assert client.get("/api/v1/auth/me").status_code == 200
    past = datetime.now(UTC) - timedelta(minutes=31)
    session.execute(text(f"UPDATE auth_sessions SET {column} = :t"), {"t": past})  # noqa: S608
    session.commit()
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_logout_everywhere_and_disabling_an_account_end_all_sessions(
    browser: Browser, session: Session, people: dict[str, UserPublic]
) -> None:
    first, csrf = signed_in(browser, "alice@clinic.example")
    second, _ = signed_in(browser, "alice@clinic.example")
    assert (
        first.post(
            "/api/v1/auth/logout?everywhere=true", headers={"X-CSRF-Token": csrf}
        ).status_code
        == 204
    )
    assert second.get("/api/v1/auth/me").status_code == 401
    third, _ = signed_in(browser, "alice@clinic.example")
    assert set_active(session, CLINIC_IT, "alice@clinic.example", active=False) == 1
    session.commit()
    assert third.get("/api/v1/auth/me").status_code == 401
    assert login(third, "alice@clinic.example").status_code == 401


def test_failed_sign_ins_are_throttled_with_retry_after(
    client: TestClient[Litestar], people: dict[str, UserPublic]
) -> None:
    for _ in range(5):
        assert login(client, "alice@clinic.example", "wrong").status_code == 401
    throttled = login(client, "alice@clinic.example")  # even the right password waits
    assert throttled.status_code == 429
    assert 0 < throttled.json()["retry_after"] <= 15 * 60
    assert throttled.headers["retry-after"] == str(throttled.json()["retry_after"])


def test_an_attacker_elsewhere_cannot_lock_the_victim_out(
    session: Session, settings: Settings, people: dict[str, UserPublic]
) -> None:
    secret = read_secret_file(settings.secret_key_path)

    def attempt(password: str, ip: str) -> Any:
        return sign_in(
            session,
            settings,
            secret,
            email="alice@clinic.example",
            password=password,
            totp_code=None,
            ip=ip,
            user_agent=None,
            replaces=None,
        )

    for _ in range(40):  # past both the per-account and the per-address limits
        with pytest.raises((SignInRefused, TooManyRequests)):
            attempt("wrong", "10.0.0.66")
    with pytest.raises(TooManyRequests):
        attempt(PASSWORD, "10.0.0.66")
    assert attempt(PASSWORD, "10.0.0.7").user.email == "alice@clinic.example"


def test_admins_must_enrol_totp_and_codes_are_single_use(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client, csrf = signed_in(browser, "adam@clinic.example")
    assert client.get("/api/v1/auth/me").json()["needs_totp_enrolment"] is True
    blocked = client.get("/api/v1/patients")
    assert blocked.status_code == 403
    assert "second factor" in blocked.json()["detail"]

    setup = client.post("/api/v1/auth/totp/setup", headers={"X-CSRF-Token": csrf}).json()
    assert setup["uri"].startswith("otpauth://totp/")
    secret = base64.b32decode(setup["secret"])
    code = totp.code_for(secret)
    confirmed = client.post(
        "/api/v1/auth/totp/confirm", json={"code": code}, headers={"X-CSRF-Token": csrf}
    )
    assert confirmed.status_code == 204
    assert client.get("/api/v1/patients").status_code == 200

    fresh = browser()
    assert login(fresh, "adam@clinic.example").status_code == 401  # code required
    replay = login(fresh, "adam@clinic.example", totp_code=code)
    assert replay.status_code == 401  # used at confirmation already
    next_code = totp.code_for(secret, time.time() + totp.STEP)
    assert login(fresh, "adam@clinic.example", totp_code=next_code).status_code == 200


def test_api_keys_act_with_their_role_until_revoked(
    client: TestClient[Litestar],
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    issued = apikeys.issue(session, "alice@clinic.example", "practice system")
    session.commit()
    stored = session.execute(text("SELECT key_hash, prefix FROM api_keys")).one()
    assert issued.key not in stored
    listed = client.get("/api/v1/patients", headers={"X-API-Key": issued.key})
    assert set(listed.json()) == {str(bob.id), str(charlie.id)}
    apikeys.revoke(session, issued.id)
    session.commit()
    assert client.get("/api/v1/patients", headers={"X-API-Key": issued.key}).status_code == 401
    assert client.get("/api/v1/patients", headers={"X-API-Key": "apl_made_up"}).status_code == 401


def denied_reads(session: Session, patient_id: Any) -> list[Any]:
    return list(
        session.execute(
            text(
                "SELECT actor_id FROM audit_events WHERE action = 'patient.read' "
                "AND outcome = 'denied' AND patient_id = :p"
            ),
            {"p": patient_id},
        )
    )


def test_a_patient_sees_only_themself_and_a_probe_at_another_is_a_404_that_is_audited(
    browser: Browser,
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    client, _ = signed_in(browser, "bob@portal.example")
    own = client.get(f"/api/v1/patients/{bob.id}")
    assert own.status_code == 200
    assert own.json()["name"] == "Bob Brennan"
    assert client.get("/api/v1/patients").json() == [str(bob.id)]
    probe = client.get(f"/api/v1/patients/{charlie.id}")
    assert probe.status_code == 404
    assert "Charlie" not in probe.text
    assert [row.actor_id for row in denied_reads(session, charlie.id)] == [people["bob"].id]


def test_therapists_see_only_assigned_patients_and_auditors_no_patients(
    browser: Browser,
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    assert alice.get(f"/api/v1/patients/{charlie.id}").json()["name"] == "Charlie Castellanos"
    dora, _ = signed_in(browser, "dora@clinic.example")
    assert dora.get("/api/v1/patients").json() == []
    assert dora.get(f"/api/v1/patients/{bob.id}").status_code == 404
    audrey, _ = signed_in(browser, "audrey@clinic.example")
    assert audrey.get("/api/v1/patients").status_code == 403


def test_security_headers_are_on_every_response(
    client: TestClient[Litestar], people: dict[str, UserPublic]
) -> None:
    for response in (
        client.get("/health"),
        client.get("/nowhere"),
        client.get("/api/v1/auth/me"),
        login(client, "alice@clinic.example"),
    ):
        headers = response.headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "http" not in headers["content-security-policy"]  # no external sources
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_the_rate_limiter_counts_per_key_and_answers_with_retry_after(session: Session) -> None:
    for _ in range(3):
        assert throttle.hit(session, "chat:patient-1", limit=3, window_seconds=3600).allowed
    over = throttle.hit(session, "chat:patient-1", limit=3, window_seconds=3600)
    assert not over.allowed
    assert 0 < over.retry_after <= 3600
    assert throttle.hit(session, "chat:patient-2", limit=3, window_seconds=3600).allowed
    with pytest.raises(TooManyRequests) as refused:
        throttle.enforce(session, "chat:patient-1", limit=3, window_seconds=3600)
    assert 0 < refused.value.retry_after <= 3600


def test_erasing_a_patient_removes_their_portal_account_and_sessions(
    browser: Browser,
    session: Session,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    client, _ = signed_in(browser, "bob@portal.example")
    erase_patient(session, keystore_for(settings), CLINIC_IT, settings.files_dir, bob.id)
    session.commit()
    assert client.get("/api/v1/auth/me").status_code == 401
    left = session.execute(text("SELECT count(*) FROM users WHERE email = 'bob@portal.example'"))
    assert left.scalar_one() == 0
