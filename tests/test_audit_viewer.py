"""The audit viewer as an auditor reads it, over HTTP with a real database: staff actors by
name and e-mail (never a patient's identity), the reader's own page views hidden unless asked
for, details as key: value pairs, a verify page whose verdict is plain and announced, and a
word on checking an export offline."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from appliance.audit.service import Actor, AuditEntry, record
from appliance.clinic.schemas import PatientPublic, UserPublic
from tests.conftest import PASSWORD, Browser

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def auditor(browser: Browser) -> TestClient[Litestar]:
    client = browser()
    signed = client.post(
        "/console/login",
        data={"email": "audrey@clinic.example", "password": PASSWORD},
        follow_redirects=False,
    )
    assert signed.headers["location"] == "/console/audit"
    return client


def test_staff_actors_are_named_but_a_patient_is_only_an_id(
    browser: Browser,
    people: dict[str, UserPublic],
    session: Session,
    bob: PatientPublic,
) -> None:
    alice, bob_account = people["alice"], people["bob"]
    record(session, Actor("therapist", alice.id), AuditEntry("test.read", patient_id=bob.id))
    record(session, Actor("patient", bob_account.id), AuditEntry("test.portal"))
    # A row that claims a staff role for the patient's account: the users table decides.
    record(session, Actor("therapist", bob_account.id), AuditEntry("test.claimed"))
    session.commit()

    page = auditor(browser).get("/console/audit?action=test.")
    assert "Dr. Alice Moreno (therapist)" in page.text
    assert "alice@clinic.example" in page.text
    assert str(bob_account.id) in page.text  # the patient's account: its id only
    assert "bob@portal.example" not in page.text
    assert "Bob Brennan" not in page.text
    assert ">bob (" not in page.text


def test_the_readers_own_views_are_hidden_by_default_and_through_the_pages(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    client = auditor(browser)
    for _ in range(3):
        client.get("/console/audit")
    for number in range(55):
        record(session, Actor("cli"), AuditEntry("test.filler", details={"n": number}))
    session.commit()

    first = client.get("/console/audit")
    assert "<code>audit.view</code>" not in first.text
    assert re.search(
        r'id="f-hide-views" name="hide_views" type="checkbox" value="1" checked', first.text
    )
    older = re.search(r'href="/console/audit\?([^"]+)" rel="next"', first.text)
    assert older
    assert "hide_views=1" in older.group(1)
    second = client.get(f"/console/audit?{older.group(1).replace('&amp;', '&')}")
    assert "<code>test.filler</code>" in second.text
    assert "<code>audit.view</code>" not in second.text

    shown = client.get("/console/audit?filtered=1&action=audit.")  # the box unticked
    assert "<code>audit.view</code>" in shown.text
    assert 'value="1" checked' not in shown.text
    assert "hide_views=1" not in shown.text


def test_details_read_as_key_value_pairs_not_json(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    record(
        session,
        Actor("cli"),
        AuditEntry(
            "test.details", details={"rows": 3, "filters": ["action", "outcome"], "ok": True}
        ),
    )
    session.commit()
    page = auditor(browser).get("/console/audit?action=test.details")
    details = re.search(r'<dl class="details">(.*?)</dl>', page.text, re.S)
    assert details, page.text
    assert "<dt>rows:</dt><dd>3</dd>" in details.group(1)
    assert "<dt>filters:</dt><dd>action, outcome</dd>" in details.group(1)
    assert "<dt>ok:</dt><dd>yes</dd>" in details.group(1)
    table = re.search(r'<table class="audit">.*?</table>', page.text, re.S)
    assert table
    assert "{&#34;" not in table.group(0)
    assert '{"rows"' not in table.group(0)


def test_verify_says_the_chain_is_intact_and_how_checkpoints_are_made(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client = auditor(browser)
    log = client.get("/console/audit")
    assert "appliance audit verify FILE" in log.text  # how to check the export offline

    before = client.get("/console/audit/verify")
    assert 'role="status" class="notice verdict-ok"' in before.text
    assert re.search(r"Verified: the chain of \d+ entries is intact", before.text)
    assert "No signed checkpoint has been made yet" in before.text
    assert "appliance audit checkpoint" in before.text
    assert "0 signed checkpoints" not in before.text

    csrf = CSRF.search(log.text)
    assert csrf
    assert (
        client.post("/console/audit/export", data={"csrf_token": csrf.group(1)}).status_code == 200
    )
    after = client.get("/console/audit/verify")
    assert "1 signed checkpoint verifies" in after.text
    assert "No signed checkpoint" not in after.text
