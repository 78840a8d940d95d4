"""A homework reminder's whole journey in real Chromium against `appliance web` as its own
process: alice drafts it from the session page of the console (JavaScript off), submits and
approves it; bob finds it in his portal inbox and reads it. No LLM service runs and bob gave
no AI consent, so the draft is the plain template: the path a clinic gets when the model is
down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.recordings.models import TherapySession
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind
from appliance.settings import Settings
from tests.conftest import PASSWORD, consented_session, serve
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)

pytestmark = pytest.mark.slow

HOMEWORK = "Walk for twenty minutes after breakfast"


@pytest.fixture
def therapy(
    session: Session, store: KeyStore, people: dict[str, UserPublic], bob: PatientPublic
) -> TherapySession:
    row: TherapySession = consented_session(session, bob.id, people["alice"].id)
    actor = Actor(role="therapist", user_id=people["alice"].id)
    facts.add(session, store, actor, row, FactKind.homework, HOMEWORK, start=60, end=75,
              frequency="every day", approved=True)  # fmt: skip
    session.commit()
    return row


@pytest.fixture
def web(settings: Settings, tmp_path: Path) -> Iterator[str]:
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def sign_in(page: Any, path: str, email: str, lands: str) -> None:
    page.goto(path)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lands)


def test_alice_drafts_approves_and_sends_a_reminder_and_bob_reads_it_in_chromium(
    chromium: Any,  # noqa: F811
    web: str,
    therapy: TherapySession,
) -> None:
    console = chromium.new_context(java_script_enabled=False, base_url=web)
    page = console.new_page()
    failures: list[str] = []
    page.on("response", lambda r: failures.append(r.url) if r.status >= 400 else None)
    sign_in(page, "/console", "alice@clinic.example", "**/console/patients")
    page.goto(f"/console/sessions/{therapy.id}")
    page.get_by_role("button", name="Draft a homework reminder").click()
    page.wait_for_url("**/console/messages?done=drafted*")
    assert "Reminder drafted" in page.get_by_role("status").inner_text()
    drafts = page.locator("#draft article")
    assert drafts.count() == 1
    body = drafts.get_by_label("Message")
    assert f"{HOMEWORK}, every day" in body.input_value()
    body.fill(body.input_value() + "\n\nSee you next Tuesday.")
    drafts.get_by_role("button", name="Save changes").click()
    page.wait_for_url("**/console/messages?done=edited*")
    page.locator("#draft article").get_by_role("button", name="Submit for approval").click()
    page.wait_for_url("**/console/messages?done=submitted*")
    waiting = page.locator("#pending article")
    assert waiting.count() == 1
    waiting.get_by_role("button", name="Approve and send").click()
    page.wait_for_url("**/console/messages?done=sent*")
    assert page.locator("#sent article").count() == 1
    assert failures == []

    portal = chromium.new_context(base_url=web, viewport={"width": 390, "height": 844})
    phone = portal.new_page()
    sign_in(phone, "/portal/login", "bob@portal.example", "**/portal")
    assert "1 new message" in phone.locator("#unread").inner_text()
    inbox = phone.locator("#inbox")
    link = inbox.get_by_role("link", name="Your homework from our session on 14 November 2026")
    link.click()
    phone.wait_for_url("**/portal/messages/*")
    text = phone.locator("article.message").inner_text()
    assert HOMEWORK in text
    assert "See you next Tuesday." in text
    assert "Dr. Alice Moreno" in text
    phone.go_back()
    phone.reload()
    assert phone.locator("#unread").count() == 0
    console.close()
    portal.close()
