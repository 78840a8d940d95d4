"""The report review in a real Chromium with JavaScript turned off, against `appliance web` as
its own process: alice dismisses the draft's risk flag with a reason, marks a line
clinical-only and approves with release; bob then finds the homework in his portal. The
screenshot is kept in test-artifacts/screenshots/ (ignored by git; CI can keep it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from appliance.clinic.schemas import UserPublic
from appliance.recordings.models import TherapySession
from appliance.reports.models import WithheldSpan
from appliance.settings import Settings
from tests.conftest import PASSWORD, REPO, serve
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)
from tests.test_report_review import clinic, recorded  # noqa: F401  (bob's drafted session)

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@pytest.fixture
def base_url(settings: Settings, recorded: TherapySession, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def sign_in(page: Any, path: str, email: str) -> None:
    page.goto(path)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_alice_approves_and_releases_the_report_and_bob_sees_his_homework(
    chromium: Any,  # noqa: F811
    base_url: str,
    recorded: TherapySession,  # noqa: F811
    people: dict[str, UserPublic],
    session: Session,
) -> None:
    context = chromium.new_context(
        java_script_enabled=False, base_url=base_url, viewport={"width": 1440, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )

    sign_in(page, "/console/login", "alice@clinic.example")
    page.wait_for_url("**/console/patients")
    page.get_by_role("link", name="Risk flags").click()
    page.get_by_role("link", name="Session of 2026-11-12").click()
    page.wait_for_url(f"**/console/sessions/{recorded.id}/report*")
    assert page.get_by_role("heading", name="Suicidal ideation").is_visible()
    assert page.get_by_role("heading", name="Subjective").is_visible()

    # A source link jumps to the transcript line it came from.
    flag = page.locator("article.flag")
    flag.locator("a.source").first.click()
    assert page.locator(".utterance:target").count() == 1

    flag.get_by_label("Reason (required)").fill("Known passive thoughts; safety plan in place.")
    flag.get_by_role("button", name="Dismiss").click()
    assert page.get_by_role("status").inner_text() == "Risk flag dismissed."
    assert page.locator("article.flag").count() == 0

    page.get_by_label("Clinical-only (the line at 00:02)").check()
    page.get_by_label("Release this session for the patient's questions").check()
    page.get_by_role("button", name="Approve version 1").click()
    assert page.get_by_role("status").inner_text() == (
        "Report approved; the patient can now ask about this session."
    )
    assert page.locator(".report-meta").inner_text().count("Approved") == 1
    assert page.locator(".tag.clinical").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "report-approved.png"), full_page=True)
    session.expire_all()
    assert session.exec(select(WithheldSpan)).one().session_id == recorded.id
    assert problems == []
    context.close()

    portal = chromium.new_context(base_url=base_url, viewport={"width": 390, "height": 844})
    page = portal.new_page()
    sign_in(page, "/portal/login", "bob@portal.example")
    page.wait_for_url("**/portal")
    homework = page.locator("section.homework")
    assert "Keep the sleep diary" in homework.inner_text()
    assert "every night" in homework.inner_text()
    portal.close()
