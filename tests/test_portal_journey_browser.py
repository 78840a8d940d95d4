"""bob's portal on a phone (390 x 844) in real Chromium, against `appliance web` as its own
process: he signs in, ticks off a homework item, reads his inbox, withdraws and gives back a
consent, and downloads his data. On every page: axe reports nothing serious, the console has
no errors (a CSP refusal would be one), and nothing is wider than the screen. Screenshots
`patient-*.png` are kept in test-artifacts/screenshots/ (ignored by git; CI can keep them)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from appliance.settings import Settings
from tests.axe_check import violations
from tests.conftest import PASSWORD, REPO, serve
from tests.retrieval_fixtures import CANARY
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)
from tests.test_portal import clinic, practice  # noqa: F401  (bob's and charlie's sessions)
from tests.test_portal_pages import (  # (approved homework, sent messages)
    BOBS_SUBJECT,
    READ_AFTER,
    sent,  # noqa: F401
    world,  # noqa: F401
)

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
CHAT = "Asking about your sessions here"


@pytest.fixture
def web(settings: Settings, world: dict[str, Any], tmp_path: Path) -> Iterator[str]:  # noqa: F811
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def check(page: Any, problems: list[str], shot: str | None = None) -> None:
    """What every page must pass, then its screenshot."""
    assert violations(page) == [], page.url
    fits = page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    assert fits, f"{page.url} scrolls sideways at 390 px"
    assert problems == [], problems
    if shot:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"patient-{shot}.png"), full_page=True)


def go(page: Any, link: str, lands: str) -> None:
    """Follow one of the navigation's links, as a thumb would."""
    page.get_by_role("navigation", name="Portal").get_by_role("link", name=link).click()
    page.wait_for_url(lands)


def test_bob_ticks_homework_reads_his_inbox_changes_a_consent_and_downloads_his_data(
    chromium: Any,  # noqa: F811
    web: str,
    world: dict[str, Any],  # noqa: F811
) -> None:
    context = chromium.new_context(base_url=web, viewport=PHONE, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto("/portal")
    page.wait_for_url("**/portal/login")
    check(page, problems)
    page.get_by_label("E-mail address").fill("bob@portal.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal")
    assert page.get_by_role("link", name="Ask").get_attribute("aria-current") == "page"
    check(page, problems, "home")

    go(page, "Homework", "**/portal/homework")
    progress = page.locator("#homework-progress")
    assert progress.inner_text() == "0 of 2 done"
    check(page, problems)
    page.get_by_role("button", name=f"Mark as done: {READ_AFTER}").click()
    expect(progress).to_have_text("1 of 2 done")
    assert page.url.endswith("/portal/homework")  # saved without leaving the page (JavaScript)
    undo = page.get_by_role("button", name=f"Mark as not done: {READ_AFTER}")
    assert undo.is_visible()
    check(page, problems, "homework")
    page.reload()
    assert progress.inner_text() == "1 of 2 done"  # saved on the server, not only on screen

    go(page, "Inbox", "**/portal/messages")
    assert page.locator("#unread").inner_text() == "You have 2 new messages from your therapist."
    check(page, problems, "inbox")
    page.get_by_role("link", name=f"New {BOBS_SUBJECT}").click()
    page.wait_for_url(f"**/portal/messages/{world['message']}")
    assert page.get_by_role("heading", name=BOBS_SUBJECT).is_visible()
    check(page, problems, "message")
    page.get_by_role("link", name="Back to your inbox").click()
    assert page.locator("#unread").inner_text() == "You have 1 new message from your therapist."

    go(page, "My consents", "**/portal/consents")
    check(page, problems)
    page.get_by_role("button", name=f"Withdraw: {CHAT}").click()
    page.wait_for_url("**/portal/consents?saved=1*")
    assert page.get_by_role("status").inner_text() == "Your choice is saved."
    assert "withdrawn here in the portal by you" in page.locator(".consent-history").inner_text()
    check(page, problems, "consent-withdrawn")
    page.get_by_role("button", name=f"Give consent: {CHAT}").click()
    page.wait_for_url("**/portal/consents?saved=1*")
    assert page.get_by_role("button", name=f"Withdraw: {CHAT}").is_visible()
    check(page, problems, "consents")

    go(page, "My data", "**/portal/my-data")
    check(page, problems, "my-data")
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download my data (ZIP)").click()
    download = downloading.value
    assert download.suggested_filename.startswith("my-data-")
    with zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes())) as archive:
        names = set(archive.namelist())
        assert {"manifest.json", "README.txt", "homework.json", "consents.json"} <= names
        homework = json.loads(archive.read("homework.json"))
        everything = b"".join(archive.read(name) for name in names).decode()
    assert [i["text"] for i in homework["items"] if i["done_at"]] == [READ_AFTER]
    assert CANARY not in everything
    assert problems == []
    context.close()
