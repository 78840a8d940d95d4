"""The therapist's journey in a real Chromium (JavaScript on, a fake microphone), against
`appliance web` as its own process: alice filters her sessions, adds one, uploads a WAV while
the progress bar runs, records a few seconds in the browser, opens a processed session's
transcript, clicks a word and the player moves there, reads the talk-time chart and releases
the session. axe finds nothing serious on any page; no console errors (a CSP refusal is one).
Screenshots: test-artifacts/screenshots/therapist-*.png."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from appliance.clinic.schemas import UserPublic
from appliance.recordings.models import Recording, TherapySession
from appliance.settings import Settings
from tests.audio import make_audio
from tests.axe_check import violations
from tests.conftest import PASSWORD, REPO, serve
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_report_review import clinic, recorded  # noqa: F401  (bob's processed session)

pytestmark = pytest.mark.slow

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
MICROPHONE_ARGS = [
    "--use-fake-device-for-media-stream",  # a generated tone instead of a real microphone
    "--use-fake-ui-for-media-stream",  # the permission prompt answered "allow"
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def chromium_with_microphone() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed for browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS + MICROPHONE_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def base_url(settings: Settings, recorded: TherapySession, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    with serve(settings, tmp_path / "web.log") as base:
        yield base


def checked(page: Any, name: str) -> None:
    assert violations(page) == [], page.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"therapist-{name}.png", full_page=True)


def test_alice_uploads_records_listens_and_releases_in_chromium(
    chromium_with_microphone: Any,
    base_url: str,
    recorded: TherapySession,  # noqa: F811
    people: dict[str, UserPublic],
    session: Session,
) -> None:
    context = chromium_with_microphone.new_context(
        base_url=base_url, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    problems: list[str] = []
    audio_statuses: list[int] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    def on_response(response: Any) -> None:
        if response.status >= 400:
            problems.append(f"{response.status} {response.url}")
        if response.url.endswith("/audio"):
            audio_statuses.append(response.status)

    page.on("response", on_response)

    page.goto("/console/login")
    page.get_by_label("E-mail address").fill("alice@clinic.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/patients")

    # All my sessions, narrowed to bob's unreleased ones.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sessions").click()
    page.wait_for_url("**/console/sessions")
    page.get_by_label("Patient", exact=True).select_option(label="Bob Brennan")
    page.get_by_label("Released to patient").select_option("no")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/sessions?*released=no*")
    assert page.get_by_role("link", name="Session of 2026-11-12").is_visible()
    checked(page, "sessions")

    # A new session for bob, from his sessions page.
    page.goto("/console/patients")
    page.get_by_role("link", name="Sessions of Bob Brennan").click()
    page.get_by_label("Date", exact=True).fill("2026-11-19")
    page.get_by_role("button", name="Add session").click()
    page.wait_for_url("**/console/sessions/*?done=created")
    assert "Session added." in page.get_by_role("status").first.inner_text()
    new_session = page.url.split("/console/sessions/")[1].split("?")[0]
    checked(page, "new-session")

    # Upload a WAV, watching the progress bar.
    seen: list[str] = []

    def report_progress(text: str) -> None:
        seen.append(text)

    page.expose_function("reportProgress", report_progress)
    page.evaluate(
        """() => new MutationObserver(() => window.reportProgress(
                 document.getElementById('upload-percent').textContent))
             .observe(document.getElementById('upload-percent'),
                      {childList: true, characterData: true, subtree: true})"""
    )
    page.get_by_label("Recording file").set_input_files(
        {"name": "session.wav", "mimeType": "audio/wav", "buffer": make_audio("wav", 30.0)}
    )
    with page.expect_navigation(url="**?done=uploaded"):
        page.get_by_role("button", name="Upload", exact=True).click()
    assert "100 %" in seen, seen
    assert "Recording received." in page.get_by_role("status").first.inner_text()
    assert page.get_by_role("heading", name="Recording of 0 min 30 s").is_visible()

    # Record three seconds with the (fake) microphone; it uploads when stopped.
    page.get_by_role("button", name="Start recording").click()
    page.wait_for_function(
        "() => document.getElementById('record-elapsed').textContent >= '00:03'", timeout=10_000
    )
    checked(page, "recording")
    with page.expect_navigation():
        page.get_by_role("button", name="Stop and upload").click()
    assert page.locator("#progress h3").count() == 2
    checked(page, "session")
    uploaded = session.exec(
        select(Recording)
        .where(col(Recording.session_id) == uuid.UUID(new_session))
        .order_by(col(Recording.created_at))
    ).all()
    assert [r.container for r in uploaded] == ["wav", "matroska"]  # MediaRecorder's WebM
    assert 2.0 < uploaded[1].duration_seconds < 10.0
    assert uploaded[1].codec in ("opus", "libopus")

    # The processed session's transcript: click a word, the player goes there.
    page.goto(f"/console/sessions/{recorded.id}/transcript")
    assert page.get_by_role("heading", name="Talk time").is_visible()
    summary = page.locator("#talk-summary").inner_text()
    assert summary.startswith("Therapist ")
    assert "patient" in summary
    assert page.locator("svg.talk-chart rect").count() > 0
    line = page.locator("li.utterance").nth(2)
    start = float(line.get_attribute("data-start") or "0")
    assert start > 3.0
    line.locator(".w").first.click()
    page.wait_for_function(f"() => document.getElementById('player').currentTime >= {start - 0.1}")
    page.wait_for_selector("li.utterance[aria-current='true']")
    # The keyboard's way: a line's time is a button.
    page.locator("li.utterance").nth(1).get_by_role("button").focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('player').currentTime < 3.5")
    page.evaluate("() => document.getElementById('player').pause()")
    assert 206 in audio_statuses, audio_statuses
    checked(page, "transcript")

    # Release it for bob's questions.
    page.goto(f"/console/sessions/{recorded.id}")
    page.get_by_role("button", name="Release for patient questions").click()
    page.wait_for_url("**?done=released")
    assert "Released to the patient" in page.locator("#release").inner_text()
    checked(page, "released")
    session.expire_all()
    assert session.get(TherapySession, recorded.id).released is True  # type: ignore[union-attr]
    assert problems == []
    context.close()
