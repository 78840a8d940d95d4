"""Hebrew, right to left, in real Chromium against `appliance web` as its own process: bob
switches the portal to Hebrew with the header's button and reads his chat, homework and
consent pages right to left; alice's browser asks for Hebrew and her console answers in it.
Each page passes axe with no console errors. Screenshots: test-artifacts/screenshots/
patient-hebrew-*.png and therapist-hebrew-*.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.clinic.schemas import UserPublic
from appliance.settings import Settings
from tests.axe_check import violations
from tests.conftest import PASSWORD, REPO, serve
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)
from tests.test_portal import clinic, practice  # noqa: F401  (bob's released sessions)

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


def watch(page: Any) -> list[str]:
    """Console errors (a CSP refusal is one) and uncaught exceptions, as they happen."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def right_to_left(page: Any) -> None:
    """The document says Hebrew, right to left, and the layout follows it."""
    root = page.locator("html")
    assert root.get_attribute("lang") == "he"
    assert root.get_attribute("dir") == "rtl"
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"


def heading(page: Any, name: str) -> None:
    assert page.get_by_role("heading", level=1, name=name).is_visible()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_bob_reads_his_portal_in_hebrew_and_alice_her_console(
    chromium: Any,  # noqa: F811
    settings: Settings,
    practice: Any,  # noqa: F811
    people: dict[str, UserPublic],
    tmp_path: Path,
) -> None:
    with serve(settings, tmp_path / "web.log") as base:
        context = chromium.new_context(base_url=base, viewport={"width": 390, "height": 844})
        page = context.new_page()
        problems = watch(page)
        page.goto("/portal/login")
        page.get_by_label("E-mail address").fill("bob@portal.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/portal")

        # The switcher: a button named in Hebrew, back to the same page, now right to left.
        page.get_by_role("button", name="עברית").click()
        page.wait_for_url("**/portal")
        right_to_left(page)
        heading(page, "שאלות על המפגשים שלך")
        assert page.get_by_label("השאלה שלך").is_visible()
        assert page.get_by_role("button", name="English").is_visible()
        assert page.get_by_role("button", name="התנתקות").is_visible()
        assert violations(page) == []
        shot(page, "patient-hebrew-chat.png")

        page.goto("/portal/homework")
        right_to_left(page)
        heading(page, "שיעורי הבית שלך")
        assert violations(page) == []
        shot(page, "patient-hebrew-homework.png")

        page.goto("/portal/consents")
        right_to_left(page)
        assert violations(page) == []
        shot(page, "patient-hebrew-consents.png")
        assert problems == []
        context.close()

        # alice's browser prefers Hebrew: the console's sign-in is already in it.
        context = chromium.new_context(
            base_url=base, viewport={"width": 1280, "height": 900}, locale="he-IL"
        )
        page = context.new_page()
        problems = watch(page)
        page.goto("/console/login")
        right_to_left(page)
        heading(page, "התחברות")
        page.get_by_label('כתובת דוא"ל').fill("alice@clinic.example")
        page.get_by_label("סיסמה").fill(PASSWORD)
        page.get_by_role("button", name="התחברות").click()
        page.wait_for_url("**/console/patients")
        right_to_left(page)
        heading(page, "מטופלים")
        assert page.get_by_role("navigation", name="ראשי").is_visible()
        assert violations(page) == []
        shot(page, "therapist-hebrew-patients.png")

        page.goto("/console/risk-flags")
        right_to_left(page)
        heading(page, "סימוני סיכון")
        assert violations(page) == []
        shot(page, "therapist-hebrew-risk-flags.png")

        # A transcript: Hebrew around English speech, times kept left to right.
        page.goto(f"/console/sessions/{practice['walks'].id}/transcript")
        right_to_left(page)
        assert page.locator("[dir=ltr]").count() > 0
        assert violations(page) == []
        shot(page, "therapist-hebrew-transcript.png")
        assert problems == []
        context.close()
