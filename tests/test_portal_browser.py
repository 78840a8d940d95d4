"""The patient portal in real Chromium with JavaScript, against `appliance web` and
`appliance llm` as their own processes and the demo GGUF: bob signs in, asks, watches the
answer stream in with citations, and plays the cited minute. Screenshots are kept in
test-artifacts/screenshots/ (ignored by git; CI can keep them)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.clinic.schemas import UserPublic
from appliance.demo_chat import llm_service
from appliance.settings import Settings
from tests.conftest import PASSWORD, REPO, serve
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    chromium,  # noqa: F401  (the module-scoped browser fixture)
)
from tests.test_portal import clinic, practice  # noqa: F401  (bob's and charlie's sessions)

pytestmark = [pytest.mark.slow, pytest.mark.model]

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"


@pytest.fixture
def portal_url(
    settings: Settings,
    practice: Any,  # noqa: F811
    tmp_path: Path,
) -> Iterator[str]:
    """The web process, talking to its own LLM service over loopback."""
    with llm_service(settings, wait_seconds=120) as llm:
        port = llm.rsplit(":", 1)[1]
        with serve(settings, tmp_path / "web.log", APPLIANCE_LLM__PORT=port) as base:
            yield base


def test_bob_signs_in_asks_and_sees_a_streamed_cited_answer_he_can_listen_to(
    chromium: Any,  # noqa: F811
    portal_url: str,
    people: dict[str, UserPublic],
) -> None:
    context = chromium.new_context(base_url=portal_url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    streamed: list[str] = []
    page.on(
        "response",
        lambda r: (
            streamed.append(r.headers.get("content-type", ""))
            if r.url.endswith("/api/v1/chat/stream")
            else None
        ),
    )

    page.goto("/portal")
    page.wait_for_url("**/portal/login")
    page.get_by_label("E-mail address").fill("bob@portal.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal")
    assert page.get_by_role("heading", name="Ask about your sessions").is_visible()

    page.get_by_label("Your question").fill("Who did I walk by the river with?")
    page.get_by_role("button", name="Ask").click()
    answer = page.locator("li.turn.assistant#answer")
    answer.wait_for(timeout=120_000)
    assert streamed
    assert streamed[0].startswith("text/event-stream")
    assert "Tomasz" in answer.locator(".said").inner_text()
    link = answer.locator("a.play").first
    assert link.inner_text().startswith("Session of 8 October 2026")
    assert page.locator("#problem").is_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "portal-cited-answer.png"), full_page=True)

    with page.expect_response(lambda r: "/portal/listen/" in r.url) as played:
        link.click()
    assert played.value.status == 200
    assert played.value.headers["content-type"] == "audio/wav"
    assert answer.locator("audio").count() == 1

    # The answer was saved: a reload shows the same conversation without JavaScript's help.
    page.reload()
    assert "Tomasz" in page.locator("li.turn.assistant").last.inner_text()
    assert problems == []
    context.close()


def sign_in(page: Any, email: str) -> None:
    page.goto("/portal/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal")


@pytest.fixture
def spoken_question(tmp_path: Path) -> Path:
    """What Chromium's fake microphone will hear, said by espeak-ng."""
    path = tmp_path / "question.wav"
    words = "What homework did we discuss last week?"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(path), words], check=True)
    return path


def test_bob_speaks_his_question_and_reads_what_was_heard_before_asking(
    chromium: Any,  # noqa: F811
    settings: Settings,
    practice: Any,  # noqa: F811
    people: dict[str, UserPublic],
    spoken_question: Path,
    tmp_path: Path,
) -> None:
    microphone = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={spoken_question}",
    ]
    with serve(settings, tmp_path / "web.log") as base:
        # A second browser with a fake microphone, from the same Playwright instance (one
        # sync Playwright per process at a time).
        browser = chromium.browser_type.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *microphone]
        )
        context = browser.new_context(base_url=base)
        context.grant_permissions(["microphone"], origin=base)
        page = context.new_page()
        sign_in(page, "bob@portal.example")
        speak = page.get_by_role("button", name="Speak your question")
        speak.click()
        page.get_by_role("button", name="Stop recording").wait_for()
        page.wait_for_timeout(3500)  # the fake microphone plays the file (about 2.5 s)
        with page.expect_response(lambda r: r.url.endswith("/api/v1/chat/voice")) as heard:
            page.get_by_role("button", name="Stop recording").click()
        assert heard.value.status == 200, heard.value.text()
        question = page.get_by_label("Your question")
        page.wait_for_function("document.getElementById('question').value.length > 0")
        said = question.input_value().lower()
        # Whisper tiny may hear "home work", and the fake microphone loops the file.
        assert {"discuss", "week"} <= set(re.findall(r"[a-z]+", said)), said
        assert page.locator("#voice-status").inner_text() == "Check the words, then press Ask."
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "portal-voice-question.png"))
        browser.close()
