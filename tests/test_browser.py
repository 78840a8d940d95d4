"""The console in a real Chromium with JavaScript turned off: what a clinic's oldest, most
locked-down browser gets. Needs Debian's chromium (`.ci/run` installs it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.settings import Settings
from tests.conftest import PASSWORD, serve

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a sandboxed CI box with no network: no background calls to Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console(settings: Settings, tmp_path: Path) -> Iterator[str]:
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def test_a_therapist_gives_and_withdraws_consent_in_chromium_without_javascript(
    chromium: Any, console: str, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    context = chromium.new_context(java_script_enabled=False, base_url=console)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text))
    loaded: list[str] = []

    def on_response(response: Any) -> None:
        loaded.append(response.url)
        if response.status >= 400:
            problems.append(f"{response.status} {response.url}")

    page.on("response", on_response)

    page.goto("/console")
    assert page.title().startswith("Sign in")
    page.get_by_label("E-mail address").fill("alice@clinic.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/patients")
    assert page.get_by_role("heading", name="Patients").is_visible()
    page.get_by_role("link", name="Consent of Bob Brennan").click()

    row = page.locator("#purpose-recording")
    assert row.locator(".state").inner_text() == "Not asked"
    row.get_by_label("How it was given").select_option("paper")
    row.get_by_role("button", name="Give recording").click()
    assert page.get_by_role("status").inner_text() == "Consent recorded."
    row = page.locator("#purpose-recording")
    assert row.locator(".state").inner_text() == "Given"

    # Withdrawing is the same single step.
    row.get_by_role("button", name="Withdraw recording").click()
    assert page.get_by_role("status").inner_text() == "Consent withdrawn."
    assert page.locator("#purpose-recording .state").inner_text() == "Withdrawn"
    history = page.locator("table.history tbody tr")
    assert history.count() == 2
    assert "paper" in history.nth(1).inner_text()

    # The style sheet came from the appliance itself; nothing failed or was blocked.
    assert any(url.endswith("/static/console.css") for url in loaded)
    assert problems == []
    context.close()
