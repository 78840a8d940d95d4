"""Consent and therapy sessions over HTTP, as staff and patients use them."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlmodel import Session

from appliance.clinic.schemas import PatientPublic, UserPublic
from tests.conftest import Browser, signed_in


def test_a_patient_withdraws_consent_in_as_many_steps_as_they_gave_it(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    client, csrf = signed_in(browser, "bob@portal.example")
    body = {"patient_id": str(bob.id), "purposes": ["patient_chat"], "method": "in_person"}
    given = client.post("/api/v1/consent", json=body, headers={"X-CSRF-Token": csrf})
    assert given.status_code == 201
    assert given.json()[0]["method"] == "portal"  # a patient acts in the portal, whatever they say
    check = f"/api/v1/consent/{bob.id}/check?purpose=patient_chat"
    assert client.get(check).json()["granted"] is True
    withdrawn = client.request(
        "DELETE", "/api/v1/consent", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert withdrawn.status_code == 200
    assert client.get(check).json()["granted"] is False  # the very next request
    history = client.get(f"/api/v1/consent/{bob.id}/audit").json()
    assert [h["status"] for h in history] == ["granted", "revoked"]
    active = {
        s["purpose"]: s["status"] for s in client.get(f"/api/v1/consent/{bob.id}/active").json()
    }
    assert active["patient_chat"] == "revoked"


def test_consent_for_another_patient_is_a_404_and_audited(
    browser: Browser, session: Session, people: dict[str, UserPublic], charlie: PatientPublic
) -> None:
    client, csrf = signed_in(browser, "bob@portal.example")
    body = {"patient_id": str(charlie.id), "purposes": ["recording"]}
    assert (
        client.post("/api/v1/consent", json=body, headers={"X-CSRF-Token": csrf}).status_code == 404
    )
    assert client.get(f"/api/v1/consent/{charlie.id}/active").status_code == 404
    denied = (
        session.execute(
            text(
                "SELECT action FROM audit_events "
                "WHERE outcome = 'denied' AND patient_id = :p ORDER BY id"
            ),
            {"p": charlie.id},
        )
        .scalars()
        .all()
    )
    assert denied == ["consent.granted", "consent.read"]


def test_invalid_consent_requests_are_problems(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    client, csrf = signed_in(browser, "alice@clinic.example")
    for body in (
        {"patient_id": str(bob.id), "purposes": []},
        {"patient_id": str(bob.id), "purposes": ["telepathy"]},
        {"patient_id": "not-a-uuid", "purposes": ["recording"]},
    ):
        response = client.post("/api/v1/consent", json=body, headers={"X-CSRF-Token": csrf})
        assert response.status_code == 422, body
        assert response.headers["content-type"].startswith("application/problem+json")
    staff_portal = {"patient_id": str(bob.id), "purposes": ["recording"], "method": "portal"}
    assert (
        client.post(
            "/api/v1/consent", json=staff_portal, headers={"X-CSRF-Token": csrf}
        ).status_code
        == 403
    )


def test_sessions_are_created_listed_by_cursor_and_filtered(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic, charlie: PatientPublic
) -> None:
    client, csrf = signed_in(browser, "alice@clinic.example")
    made = []
    for day in range(1, 6):
        for patient in (bob, charlie):
            response = client.post(
                "/api/v1/sessions",
                headers={"X-CSRF-Token": csrf},
                json={"patient_id": str(patient.id), "session_date": f"2026-10-0{day}"},
            )
            assert response.status_code == 201, response.text
            made.append(response.json()["id"])
    seen, cursor = [], None
    while True:
        page = client.get(
            "/api/v1/sessions", params={"limit": 3, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [item["id"] for item in page["items"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))
    dates = [
        item["session_date"] for item in client.get("/api/v1/sessions?limit=100").json()["items"]
    ]
    assert dates == sorted(dates, reverse=True)
    only_bob = client.get(
        "/api/v1/sessions",
        params={"patient_id": str(bob.id), "date_from": "2026-10-02", "date_to": "2026-10-03"},
    )
    assert {i["session_date"] for i in only_bob.json()["items"]} == {"2026-10-02", "2026-10-03"}
    assert {i["patient_id"] for i in only_bob.json()["items"]} == {str(bob.id)}
    assert client.get("/api/v1/sessions", params={"cursor": "garbage"}).status_code == 422


def test_a_patient_sees_only_their_own_sessions_and_only_their_therapist_releases(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic, charlie: PatientPublic
) -> None:
    alice, csrf = signed_in(browser, "alice@clinic.example")
    bobs = alice.post(
        "/api/v1/sessions",
        headers={"X-CSRF-Token": csrf},
        json={"patient_id": str(bob.id), "session_date": "2026-11-14"},
    ).json()
    charlies = alice.post(
        "/api/v1/sessions",
        headers={"X-CSRF-Token": csrf},
        json={"patient_id": str(charlie.id), "session_date": "2026-11-14"},
    ).json()
    assert bobs["released"] is False

    bob_client, bob_csrf = signed_in(browser, "bob@portal.example")
    assert [i["id"] for i in bob_client.get("/api/v1/sessions").json()["items"]] == [bobs["id"]]
    assert bob_client.get(f"/api/v1/sessions/{charlies['id']}").status_code == 404
    assert (
        bob_client.post(
            f"/api/v1/sessions/{bobs['id']}/release", headers={"X-CSRF-Token": bob_csrf}
        ).status_code
        == 403
    )

    dora, dora_csrf = signed_in(browser, "dora@clinic.example")
    assert (
        dora.post(
            f"/api/v1/sessions/{bobs['id']}/release", headers={"X-CSRF-Token": dora_csrf}
        ).status_code
        == 404
    )
    assert (
        dora.post(
            "/api/v1/sessions",
            headers={"X-CSRF-Token": dora_csrf},
            json={"patient_id": str(bob.id), "session_date": "2026-11-14"},
        ).status_code
        == 404
    )

    released = alice.post(f"/api/v1/sessions/{bobs['id']}/release", headers={"X-CSRF-Token": csrf})
    assert released.status_code == 201
    assert released.json()["released"] is True
    updated = alice.patch(
        f"/api/v1/sessions/{bobs['id']}",
        headers={"X-CSRF-Token": csrf},
        json={"status": "cancelled"},
    )
    assert updated.json()["status"] == "cancelled"
    assert alice.get(f"/api/v1/sessions/{uuid.uuid4()}").status_code == 404
