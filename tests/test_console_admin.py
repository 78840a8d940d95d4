"""The console's administration over HTTP against the real database: clinic settings that take
effect in the chat, the worker's report drafts and sign-in throttling without a restart; staff
accounts and roles with the last-administrator rule; patients and their therapists; API keys
shown once. Only administrators get in; a refused form re-renders with its reason and writes
nothing."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.auth.models import ApiKey, AuthSession
from appliance.clinic import preferences, staff
from appliance.clinic.models import Clinic, Patient, Role, TherapistAssignment, User
from appliance.clinic.schemas import PatientPublic, UserCreate, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.errors import Conflict
from appliance.reports import service as reports
from appliance.settings import Settings
from tests.chat_fakes import FakeChatModel
from tests.conftest import CLINIC_IT, Browser, login, signed_in, signed_in_admin
from tests.retrieval_fixtures import Clinic as Practice
from tests.retrieval_fixtures import scripted
from tests.speech_fakes import FakeSpeech

ADMIN_PAGES = (
    "/console/admin",
    "/console/admin/clinic",
    "/console/admin/users",
    "/console/admin/patients",
    "/console/admin/api-keys",
)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CRISIS_QUESTION = "I don't want to be here anymore"


def csrf_of(client: TestClient[Any], path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
    return list(session.exec(query))


def clinic_form(settings: Settings, **changes: str) -> dict[str, str]:
    values = {k: str(v) for k, v in preferences.from_settings(settings).model_dump().items()}
    return {**values, **changes}


def stored_preferences(session: Session) -> dict[str, Any]:
    session.expire_all()
    return dict(session.exec(select(Clinic)).one().preferences)


@pytest.fixture
def admin(browser: Browser, people: dict[str, UserPublic]) -> TestClient[Any]:
    client, _ = signed_in_admin(browser)
    return client


# --- who gets in ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["alice", "dora", "audrey", "bob"])
def test_only_administrators_open_the_admin_pages(
    browser: Browser, people: dict[str, UserPublic], who: str
) -> None:
    client, _ = signed_in(
        browser, f"{who}@portal.example" if who == "bob" else f"{who}@clinic.example"
    )
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 403, path


def test_a_therapist_cannot_post_clinic_settings_even_with_a_valid_token(
    browser: Browser, people: dict[str, UserPublic], session: Session, settings: Settings
) -> None:
    client, _ = signed_in(browser, "alice@clinic.example")
    token = csrf_of(client, "/console/patients")
    form = clinic_form(settings, crisis_text="Call me, not 911.", csrf_token=token)
    assert client.post("/console/admin/clinic", data=form).status_code == 403
    assert stored_preferences(session) == {}


def test_the_admin_index_links_only_pages_this_appliance_serves(admin: TestClient[Any]) -> None:
    page = admin.get("/console/admin")
    assert page.status_code == 200
    served = {route.path for route in admin.app.routes}
    for href in re.findall(r'<li><a href="([^"]+)"', page.text):
        assert href in served
    assert 'href="/console/admin/clinic"' in page.text
    assert 'href="/console/admin"' in admin.get("/console/patients").text  # the nav entry


# --- clinic settings --------------------------------------------------------------------------


def test_saved_settings_show_at_once_and_are_audited_by_key_name_only(
    admin: TestClient[Any], session: Session, settings: Settings
) -> None:
    token = csrf_of(admin, "/console/admin/clinic")
    form = clinic_form(
        settings,
        clinic_name="Harbour Street Clinic",
        timezone="Asia/Jerusalem",
        crisis_text="Call the Harbour line: 555-0100.",
        csrf_token=token,
    )
    saved = admin.post("/console/admin/clinic", data=form, follow_redirects=False)
    assert saved.status_code == 303
    assert "Harbour Street Clinic" in admin.get("/console/patients").text
    assert stored_preferences(session) == {
        "clinic_name": "Harbour Street Clinic",
        "timezone": "Asia/Jerusalem",
        "crisis_text": "Call the Harbour line: 555-0100.",
    }
    [entry] = audit_rows(session, "clinic.preferences.update")
    assert entry.details == {"changed": ["clinic_name", "timezone", "crisis_text"]}
    assert "Harbour" not in str(entry.details)
    effective = preferences.effective_settings(settings, session)
    assert (effective.clinic.timezone, effective.clinic.name) == (
        "Asia/Jerusalem",
        "Harbour Street Clinic",
    )


def test_an_invalid_setting_re_renders_the_form_with_the_reason_and_saves_nothing(
    admin: TestClient[Any], session: Session, settings: Settings
) -> None:
    token = csrf_of(admin, "/console/admin/clinic")
    form = clinic_form(
        settings,
        clinic_name="Renamed",
        timezone="Mars/Olympus_Mons",
        questions_per_hour="0",
        csrf_token=token,
    )
    page = admin.post("/console/admin/clinic", data=form)
    assert page.status_code == 422
    assert "Nothing was saved" in page.text
    assert "unknown time zone" in page.text
    assert "questions_per_hour" in page.text
    assert 'value="Renamed"' in page.text  # what was typed is kept
    assert stored_preferences(session) == {}
    assert audit_rows(session, "clinic.preferences.update") == []


def test_a_value_set_back_to_the_files_is_stored_as_absent(
    session: Session, settings: Settings, adam: UserPublic
) -> None:
    actor = CLINIC_IT
    assert preferences.save(session, settings, actor, {"note_format": "birp"}) == ["note_format"]
    assert stored_preferences(session) == {"note_format": "birp"}
    preferences.save(session, settings, actor, {"note_format": settings.reports.note_format})
    session.commit()
    assert stored_preferences(session) == {}


def test_the_crisis_text_set_in_the_console_is_what_a_patient_in_crisis_is_shown(
    admin: TestClient[Any], browser: Browser, session: Session, settings: Settings
) -> None:
    token = csrf_of(admin, "/console/admin/clinic")
    text = "Please call the Harbour crisis line now: 555-0100."
    admin.post(
        "/console/admin/clinic", data=clinic_form(settings, crisis_text=text, csrf_token=token)
    )
    patient, csrf = signed_in(browser, "bob@portal.example")
    model = FakeChatModel()
    patient.app.state.chat_model = model
    answered = patient.post(
        "/api/v1/chat", json={"question": CRISIS_QUESTION}, headers={"X-CSRF-Token": csrf}
    )
    assert answered.status_code == 200, answered.text
    assert (answered.json()["reason"], answered.json()["answer"]) == ("crisis", text)
    assert model.calls == []


def test_the_hourly_question_limit_set_in_the_console_applies_to_the_next_question(
    admin: TestClient[Any], browser: Browser, settings: Settings
) -> None:
    token = csrf_of(admin, "/console/admin/clinic")
    admin.post(
        "/console/admin/clinic",
        data=clinic_form(settings, questions_per_hour="1", csrf_token=token),
    )
    patient, csrf = signed_in(browser, "bob@portal.example")
    patient.app.state.chat_model = FakeChatModel()
    headers = {"X-CSRF-Token": csrf}
    first = patient.post("/api/v1/chat", json={"question": CRISIS_QUESTION}, headers=headers)
    assert first.status_code == 200
    second = patient.post("/api/v1/chat", json={"question": CRISIS_QUESTION}, headers=headers)
    assert second.status_code == 429


def test_the_sign_in_throttle_follows_the_console(
    admin: TestClient[Any], browser: Browser, settings: Settings
) -> None:
    token = csrf_of(admin, "/console/admin/clinic")
    admin.post(
        "/console/admin/clinic",
        data=clinic_form(settings, max_failures_per_account_and_ip="1", csrf_token=token),
    )
    client = browser()
    assert login(client, "alice@clinic.example", "wrong password!").status_code == 401
    assert login(client, "alice@clinic.example").status_code == 429


def test_the_report_worker_drafts_in_the_note_format_set_in_the_console(
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    bob: PatientPublic,
    alice: UserPublic,
) -> None:
    preferences.save(session, settings, CLINIC_IT, {"note_format": "dap"})
    session.commit()
    practice = Practice(session, settings, store, database, FakeSpeech())
    practice.consent(bob, Purpose.recording, Purpose.transcription, Purpose.ai_analysis)
    row = practice.recorded(
        bob,
        alice,
        date(2026, 11, 10),
        scripted(
            ("SPEAKER_01", "How were the evenings? For homework, keep the sleep diary."),
            ("SPEAKER_00", "I slept better on the nights I wrote in it."),
        ),
        release=False,
    )
    therapist = Actor(role="therapist", user_id=alice.id)
    [version] = reports.versions(session, store, therapist, row)
    assert version.note_format.value == "dap"


# --- users and roles --------------------------------------------------------------------------


def test_an_admin_adds_a_therapist_who_can_then_sign_in(
    admin: TestClient[Any], browser: Browser, session: Session
) -> None:
    token = csrf_of(admin, "/console/admin/users")
    form = {
        "csrf_token": token,
        "name": "Dr. Tomas Reyes",
        "email": "Tomas@Clinic.example",
        "role": "therapist",
        "password": "a long enough passphrase",
        "password_again": "a long enough passphrase",
    }
    assert admin.post("/console/admin/users", data=form, follow_redirects=False).status_code == 303
    listing = admin.get("/console/admin/users").text
    assert "Dr. Tomas Reyes" in listing
    assert "tomas@clinic.example" in listing
    assert login(browser(), "tomas@clinic.example", "a long enough passphrase").status_code == 200
    assert audit_rows(session, "user.create")[-1].details == {"role": "therapist"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"password": "short", "password_again": "short"}, "password"),
        ({"password_again": "a different passphrase"}, "the two passwords differ"),
        ({"email": "not-an-address"}, "email"),
        ({"role": "patient"}, "staff are administrators, therapists or auditors"),
        ({"email": "alice@clinic.example"}, "already exists"),
    ],
)
def test_a_refused_new_user_re_renders_the_form_and_adds_no_account(
    admin: TestClient[Any], session: Session, change: dict[str, str], reason: str
) -> None:
    before = len(session.exec(select(User)).all())
    form = {
        "csrf_token": csrf_of(admin, "/console/admin/users"),
        "name": "New Person",
        "email": "new@clinic.example",
        "role": "therapist",
        "password": "a long enough passphrase",
        "password_again": "a long enough passphrase",
        **change,
    }
    page = admin.post("/console/admin/users", data=form)
    assert page.status_code in (409, 422)
    assert reason in page.text
    assert 'value="New Person"' in page.text
    session.expire_all()
    assert len(session.exec(select(User)).all()) == before


def test_disabling_a_therapist_ends_their_sessions_and_enabling_lets_them_back(
    admin: TestClient[Any], browser: Browser, session: Session, people: dict[str, UserPublic]
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    assert alice.get("/console/patients").status_code == 200
    token = csrf_of(admin, "/console/admin/users")
    path = f"/console/admin/users/{people['alice'].id}/active"
    assert admin.post(path, data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert (
        alice.get("/console/patients", follow_redirects=False)
        .headers["location"]
        .endswith("/console/login")
    )
    session.expire_all()
    live = session.exec(
        select(AuthSession).where(
            AuthSession.user_id == people["alice"].id, col(AuthSession.revoked_at).is_(None)
        )
    ).all()
    assert live == []
    assert login(browser(), "alice@clinic.example").status_code == 401
    admin.post(path, data={"csrf_token": token, "active": "true"})
    assert login(browser(), "alice@clinic.example").status_code == 200


def test_an_admin_changes_a_role_but_never_their_own(
    admin: TestClient[Any], session: Session, people: dict[str, UserPublic]
) -> None:
    token = csrf_of(admin, "/console/admin/users")
    dora = people["dora"].id
    changed = admin.post(
        f"/console/admin/users/{dora}/role", data={"csrf_token": token, "role": "auditor"}
    )
    assert changed.status_code == 200  # followed to the listing
    session.expire_all()
    assert session.get(User, dora).role == "auditor"  # type: ignore[union-attr]
    own = people["adam"].id
    demoted = admin.post(
        f"/console/admin/users/{own}/role", data={"csrf_token": token, "role": "therapist"}
    )
    assert demoted.status_code == 409
    disabled = admin.post(f"/console/admin/users/{own}/active", data={"csrf_token": token})
    assert disabled.status_code == 409
    session.expire_all()
    adam = session.get(User, own)
    assert adam is not None
    assert (adam.role, adam.is_active) == ("admin", True)


def test_the_last_active_administrator_can_be_neither_demoted_nor_disabled(
    session: Session, people: dict[str, UserPublic]
) -> None:
    adam = people["adam"].id
    with pytest.raises(Conflict, match="at least one active administrator"):
        staff.change_role(session, CLINIC_IT, adam, Role.auditor)
    with pytest.raises(Conflict, match="at least one active administrator"):
        staff.set_staff_active(session, CLINIC_IT, adam, False)
    session.rollback()
    ada = staff.add_staff(
        session,
        CLINIC_IT,
        UserCreate(name="Ada", email="ada@clinic.example", role=Role.admin, password="x" * 12),
    )
    staff.change_role(session, CLINIC_IT, adam, Role.auditor)  # ada still administers
    with pytest.raises(Conflict):
        staff.set_staff_active(session, CLINIC_IT, ada.id, False)


# --- patients and therapists ------------------------------------------------------------------


def test_an_admin_adds_a_patient_whom_their_therapist_then_sees(
    admin: TestClient[Any], browser: Browser, session: Session, people: dict[str, UserPublic]
) -> None:
    form = {
        "csrf_token": csrf_of(admin, "/console/admin/patients"),
        "name": "Erin Okafor",
        "email": "erin@home.example",
        "therapist_id": str(people["dora"].id),
    }
    assert admin.post("/console/admin/patients", data=form).status_code == 200
    dora, _ = signed_in(browser, "dora@clinic.example")
    assert "Erin Okafor" in dora.get("/console/patients").text
    assert (
        "Erin Okafor"
        not in signed_in(browser, "alice@clinic.example")[0].get("/console/patients").text
    )
    [created] = audit_rows(session, "patient.create")[-1:]
    assert created.details == {"therapist_id": str(people["dora"].id)}


@pytest.mark.parametrize(
    "change", [{"name": "   "}, {"email": "nope"}, {"therapist_id": "not-a-uuid"}]
)
def test_a_refused_new_patient_re_renders_the_form_and_adds_no_record(
    admin: TestClient[Any], session: Session, people: dict[str, UserPublic], change: dict[str, str]
) -> None:
    before = len(session.exec(select(Patient)).all())
    form = {
        "csrf_token": csrf_of(admin, "/console/admin/patients"),
        "name": "Erin Okafor",
        "email": "",
        "therapist_id": str(people["alice"].id),
        **change,
    }
    assert admin.post("/console/admin/patients", data=form).status_code == 422
    session.expire_all()
    assert len(session.exec(select(Patient)).all()) == before


def test_therapists_are_assigned_and_unassigned_but_the_last_one_stays(
    admin: TestClient[Any],
    browser: Browser,
    session: Session,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    token = csrf_of(admin, "/console/admin/patients")
    dora, alice = people["dora"].id, people["alice"].id
    base = f"/console/admin/patients/{bob.id}/therapists"
    assert (
        admin.post(base, data={"csrf_token": token, "therapist_id": str(dora)}).status_code == 200
    )
    dora_client, _ = signed_in(browser, "dora@clinic.example")
    assert "Bob Brennan" in dora_client.get("/console/patients").text
    assert admin.post(f"{base}/{alice}/remove", data={"csrf_token": token}).status_code == 200
    last = admin.post(f"{base}/{dora}/remove", data={"csrf_token": token})
    assert last.status_code == 409
    session.expire_all()
    left = session.exec(
        select(TherapistAssignment.therapist_id).where(TherapistAssignment.patient_id == bob.id)
    ).all()
    assert left == [dora]
    assert [e.details for e in audit_rows(session, "patient.assign")] == [
        {"therapist_id": str(dora)}
    ]


# --- API keys ---------------------------------------------------------------------------------


def test_an_api_key_is_shown_once_stored_as_a_hash_works_and_stops_when_revoked(
    admin: TestClient[Any], browser: Browser, session: Session, people: dict[str, UserPublic]
) -> None:
    token = csrf_of(admin, "/console/admin/api-keys")
    form = {"csrf_token": token, "name": "Scheduling sync", "user_id": str(people["alice"].id)}
    made = admin.post("/console/admin/api-keys", data=form)
    assert made.status_code == 201
    found = re.search(r'id="issued-key">(apl_[^<]+)<', made.text)
    assert found
    secret = found.group(1)
    session.expire_all()
    [row] = session.exec(select(ApiKey)).all()
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in admin.get("/console/admin/api-keys").text
    assert row.role == "therapist"
    api = browser()
    assert api.get("/api/v1/auth/me", headers={"X-API-Key": secret}).status_code == 200
    revoke = admin.post(f"/console/admin/api-keys/{row.id}/revoke", data={"csrf_token": token})
    assert revoke.status_code == 200
    assert api.get("/api/v1/auth/me", headers={"X-API-Key": secret}).status_code == 401
    assert [e.action for e in audit_rows(session, "apikey.create")] == ["apikey.create"]
    assert len(audit_rows(session, "apikey.revoke")) == 1


def test_an_unnamed_api_key_is_refused_and_none_is_made(
    admin: TestClient[Any], session: Session, people: dict[str, UserPublic]
) -> None:
    token = csrf_of(admin, "/console/admin/api-keys")
    page = admin.post(
        "/console/admin/api-keys",
        data={"csrf_token": token, "name": "  ", "user_id": str(uuid.uuid4())},
    )
    assert page.status_code == 422
    assert session.exec(select(ApiKey)).all() == []
