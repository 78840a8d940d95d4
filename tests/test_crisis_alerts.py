"""Crisis alerts reach the patient's therapist: a badge in the console's navigation, a page
listing the open alerts, an Acknowledge button. Alerts are raised the real way, by a patient's
crisis question through the chat service; who may see them is decided in SQL, an alert outside
that reads as no alert at all, and every listing and acknowledgement is audited."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session, col, select

from appliance.app import create_app
from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.chat import service as chat
from appliance.chat.models import CrisisAlert
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.settings import Settings
from tests.chat_fakes import FakeChatModel
from tests.conftest import Browser, login, signed_in, signed_in_admin

CRISIS_QUESTION = "I don't want to be here anymore"
BADGE = re.compile(r'<span class="badge">(\d+)<span class="visually-hidden"> open crisis alert')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def badge(page: Any) -> int | None:
    """The number on the navigation's Alerts badge, or None when there is no badge."""
    found = BADGE.search(page.text)
    return int(found.group(1)) if found else None


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture
def raise_alert(
    session: Session, settings: Settings, store: KeyStore, people: dict[str, UserPublic]
) -> Any:
    """A patient asks a crisis question in the portal chat (the fake model is never called)."""

    def ask(patient: PatientPublic, portal_name: str) -> CrisisAlert:
        model = FakeChatModel()
        actor = Actor(role="patient", user_id=people[portal_name].id)
        context = chat.ChatContext(session, store, settings, actor, model)
        result = chat.answer(context, patient.id, CRISIS_QUESTION)
        assert (result.refused, result.reason) == (True, "crisis")
        assert model.calls == []
        return session.exec(
            select(CrisisAlert)
            .where(CrisisAlert.patient_id == patient.id)
            .order_by(col(CrisisAlert.created_at).desc())
        ).first()  # type: ignore[return-value]

    return ask


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(
        session.exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
        )
    )


def test_a_crisis_question_shows_a_badge_to_the_patients_therapist(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic, raise_alert: Any
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    before = alice.get("/console/patients")
    assert 'href="/console/alerts"' in before.text
    assert badge(before) is None  # no badge while nothing is open

    raise_alert(bob, "bob")

    patients = alice.get("/console/patients")
    assert badge(patients) == 1
    assert "> open crisis alert</span>" in patients.text  # what a screen reader says
    listed = alice.get("/console/alerts")
    assert listed.status_code == 200
    assert badge(listed) == 1
    assert "Bob Brennan" in listed.text
    assert "Suicide risk" in listed.text
    assert "crisis protocol" in listed.text
    assert "Acknowledge" in listed.text
    assert "be here anymore" not in listed.text  # never the patient's words
    assert "script" not in listed.text.lower()  # a plain form: works without JavaScript


def test_the_badge_counts_every_open_alert_of_the_therapists_patients(
    browser: Browser,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    charlie: PatientPublic,
    raise_alert: Any,
) -> None:
    raise_alert(bob, "bob")
    raise_alert(charlie, "charlie")
    raise_alert(bob, "bob")
    alice, _ = signed_in(browser, "alice@clinic.example")
    page = alice.get("/console/alerts")
    assert badge(page) == 3
    assert "> open crisis alerts</span>" in page.text
    assert page.text.count('<th scope="row">Bob Brennan</th>') == 2
    assert "Charlie Castellanos" in page.text


def test_another_therapist_does_not_see_the_alert(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic, raise_alert: Any
) -> None:
    raise_alert(bob, "bob")
    dora, _ = signed_in(browser, "dora@clinic.example")
    page = dora.get("/console/alerts")
    assert page.status_code == 200
    assert badge(page) is None
    assert "No open alerts." in page.text
    assert "Bob Brennan" not in page.text
    assert dora.get("/api/v1/alerts").json() == []


def test_an_administrator_sees_every_open_alert(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic, raise_alert: Any
) -> None:
    alert = raise_alert(bob, "bob")
    adam, _ = signed_in_admin(browser)
    [listed] = adam.get("/api/v1/alerts").json()
    assert listed["id"] == str(alert.id)
    assert (listed["patient_name"], listed["category"]) == ("Bob Brennan", "suicide")
    assert listed["category_label"] == "Suicide risk"
    assert badge(adam.get("/console/alerts")) == 1


def test_acknowledging_clears_the_badge_and_is_audited(
    browser: Browser,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    raise_alert: Any,
    session: Session,
) -> None:
    alert = raise_alert(bob, "bob")
    alice, _ = signed_in(browser, "alice@clinic.example")
    page = alice.get("/console/alerts")
    done = alice.post(
        f"/console/alerts/{alert.id}/acknowledge",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/console/alerts?done=acknowledged"
    shown = alice.get(done.headers["location"])
    assert "Alert acknowledged." in shown.text
    assert badge(shown) is None
    assert "No open alerts." in shown.text

    session.expire_all()
    stored = session.get(CrisisAlert, alert.id)
    assert stored is not None
    assert stored.acknowledged_by == people["alice"].id
    assert stored.acknowledged_at is not None

    [acknowledged] = audit_rows(session, "crisis_alert.acknowledge")
    assert (acknowledged.outcome, acknowledged.actor_id) == ("success", people["alice"].id)
    assert (acknowledged.object_id, acknowledged.patient_id) == (str(alert.id), bob.id)
    assert acknowledged.details == {"category": "suicide", "already_acknowledged": False}
    listings = audit_rows(session, "crisis_alert.list")
    assert listings[0].details["alert_ids"] == [str(alert.id)]
    assert listings[-1].details["count"] == 0
    logged = json.dumps([row.details for row in [*listings, acknowledged]])
    assert "Bob" not in logged  # ids and the category only, no PHI


def test_acknowledging_twice_keeps_the_first_acknowledgement(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic, raise_alert: Any
) -> None:
    alert = raise_alert(bob, "bob")
    alice, alice_csrf = signed_in(browser, "alice@clinic.example")
    url = f"/api/v1/alerts/{alert.id}/acknowledge"
    first = alice.post(url, headers={"X-CSRF-Token": alice_csrf})
    assert first.status_code == 200, first.text
    assert first.json()["already_acknowledged"] is False

    adam, adam_csrf = signed_in_admin(browser)
    again = adam.post(url, headers={"X-CSRF-Token": adam_csrf})
    assert again.status_code == 200, again.text
    assert again.json()["already_acknowledged"] is True
    assert again.json()["acknowledged_by"] == str(people["alice"].id)
    assert again.json()["acknowledged_at"] == first.json()["acknowledged_at"]

    page = alice.get("/console/alerts")  # a double click in the console: a notice, no error
    repeat = alice.post(
        f"/console/alerts/{alert.id}/acknowledge", data={"csrf_token": csrf_of(page)}
    )
    assert repeat.status_code == 200
    assert "That alert had already been acknowledged." in repeat.text


def test_acknowledging_an_alert_of_another_therapists_patient_is_404(
    browser: Browser,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    raise_alert: Any,
    session: Session,
) -> None:
    alert = raise_alert(bob, "bob")
    dora, dora_csrf = signed_in(browser, "dora@clinic.example")
    token = csrf_of(dora.get("/console/alerts"))
    theirs = dora.post(f"/console/alerts/{alert.id}/acknowledge", data={"csrf_token": token})
    missing = dora.post(f"/console/alerts/{uuid.uuid4()}/acknowledge", data={"csrf_token": token})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text  # an alert she may not see reads as none at all
    assert "Bob Brennan" not in theirs.text
    api = dora.post(f"/api/v1/alerts/{alert.id}/acknowledge", headers={"X-CSRF-Token": dora_csrf})
    assert api.status_code == 404

    session.expire_all()
    stored = session.get(CrisisAlert, alert.id)
    assert stored is not None
    assert stored.acknowledged_at is None
    refused = audit_rows(session, "crisis_alert.acknowledge")
    assert [(r.outcome, r.actor_id) for r in refused] == [("denied", people["dora"].id)] * 3
    assert refused[0].object_id == str(alert.id)


def test_an_acknowledgement_without_the_csrf_token_is_refused(
    browser: Browser,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    raise_alert: Any,
    session: Session,
) -> None:
    alert = raise_alert(bob, "bob")
    alice, _ = signed_in(browser, "alice@clinic.example")
    url = f"/console/alerts/{alert.id}/acknowledge"
    for form in ({}, {"csrf_token": "forged"}):
        response = alice.post(url, data=form, follow_redirects=False)
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert alice.post(f"/api/v1/alerts/{alert.id}/acknowledge").status_code == 403
    session.expire_all()
    stored = session.get(CrisisAlert, alert.id)
    assert stored is not None
    assert stored.acknowledged_at is None
    assert badge(alice.get("/console/alerts")) == 1


def test_patients_and_auditors_cannot_see_alerts(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic, raise_alert: Any
) -> None:
    raise_alert(bob, "bob")
    for email in ("bob@portal.example", "audrey@clinic.example"):
        client, _ = signed_in(browser, email)
        assert client.get("/api/v1/alerts").status_code == 403
        page = client.get("/console/alerts")
        assert page.status_code == 403
        assert "Bob Brennan" not in page.text


def test_a_signed_out_browser_is_sent_to_sign_in(browser: Browser) -> None:
    response = browser().get("/console/alerts", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


def test_alert_times_are_shown_in_the_clinics_time_zone(
    settings: Settings,
    database: Database,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    raise_alert: Any,
) -> None:
    alert = raise_alert(bob, "bob")
    clinic = settings.clinic.model_copy(update={"timezone": "Europe/Berlin"})
    berlin = settings.model_copy(update={"clinic": clinic})
    with TestClient[Litestar](app=create_app(berlin, database)) as client:
        assert login(client, "alice@clinic.example").status_code == 200
        page = client.get("/console/alerts")
    local = alert.created_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert local.strftime("%Y-%m-%d %H:%M %Z") in page.text
    assert local.strftime("%Z") in ("CET", "CEST")


def test_the_alerts_api_is_in_the_openapi_document_and_the_page_is_not(
    client: TestClient[Litestar],
) -> None:
    paths = client.get("/schema").json()["paths"]
    assert "/api/v1/alerts" in paths
    assert "/api/v1/alerts/{alert_id}/acknowledge" in paths
    assert not any(path.startswith("/console") for path in paths)
