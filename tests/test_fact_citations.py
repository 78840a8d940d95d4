"""A homework item the therapist typed into the report was never said: the portal names it as
their note of the session (no minute, no "Hear it", no quotation marks), the listen endpoint
refuses the empty window such an item would point at, and a spoken item still links to the
moment it was said, named as a position in the session rather than a time of day."""

from __future__ import annotations

import html as markup
import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.messages.drafting import Item, describe
from appliance.portal.pages import elapsed
from appliance.reports.document import HomeworkItem, Report, Source
from appliance.reports.edits import edited
from appliance.reports.schemas import HomeworkIn, ReportEdit
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind, TranscriptChunk
from appliance.settings import Settings
from tests.chat_fakes import FakeChatModel
from tests.conftest import PASSWORD, REPO, Browser, serve, signed_in
from tests.retrieval_fixtures import Clinic, record_practice
from tests.speech_fakes import FakeSpeech
from tests.test_browser import chromium  # noqa: F401  (the module-scoped browser fixture)
from tests.test_portal import listen_links, portal

TYPED = "Take a 20-minute walk"
SPOKEN = "Write down three good things"
QUESTION = "What homework did we discuss?"


@pytest.fixture
def clinic(session: Session, settings: Settings, store: KeyStore, database: Database) -> Clinic:
    return Clinic(session, settings, store, database, FakeSpeech())


@pytest.fixture
def homework(
    clinic: Clinic,
    session: Session,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
    people: dict[str, UserPublic],
) -> dict[str, Any]:
    """bob's walks session with two approved items: one the therapist typed into the editor
    (no utterance behind it: stored 0..0, as an approved report stores it) and one said at a
    passage bob may hear."""
    practice = record_practice(clinic, alice, bob, charlie)
    walks = practice["walks"]
    chunk = session.exec(
        select(TranscriptChunk)
        .where(TranscriptChunk.session_id == walks.id)
        .where(col(TranscriptChunk.patient_visible).is_(True))
        .order_by(col(TranscriptChunk.start_seconds))
    ).first()
    assert chunk is not None
    therapist = Actor(role="therapist", user_id=alice.id)
    facts.add(
        session, store, therapist, walks, FactKind.homework, TYPED, start=0.0, end=0.0,
        frequency="every morning", due="before next session", approved=True,
    )  # fmt: skip
    facts.add(
        session, store, therapist, walks, FactKind.homework, SPOKEN,
        start=chunk.start_seconds, end=chunk.end_seconds, approved=True,
    )  # fmt: skip
    session.commit()
    return {"walks": walks, "chunk": chunk}


def _item(page: str, text: str) -> str:
    """The list item of `page` that holds `text`."""
    for item in re.findall(r"<li[^>]*>.*?</li>", page, re.DOTALL):
        if text in item:
            return item
    raise AssertionError(f"no item with {text!r}")


def test_a_typed_homework_item_has_no_listen_link_or_minute_on_the_homework_page(
    browser: Browser, homework: dict[str, Any]
) -> None:
    client, _ = portal(browser, "bob@portal.example")
    page = markup.unescape(client.get("/portal/homework").text)
    typed = _item(page, TYPED)
    assert "/portal/listen/" not in typed
    assert "Hear it" not in typed
    assert "From your therapist's notes of the session of 8 October 2026" in typed
    assert "due: before next session" in typed
    assert "by before" not in page
    spoken = _item(page, SPOKEN)
    assert "/portal/listen/" in spoken
    start = homework["chunk"].start_seconds
    assert f"Hear it ({elapsed(start)} into the session)" in spoken


def test_the_portal_home_lists_the_typed_item_as_a_note_and_the_spoken_one_with_its_moment(
    browser: Browser, homework: dict[str, Any]
) -> None:
    client, _ = portal(browser, "bob@portal.example")
    page = markup.unescape(client.get("/portal").text)
    typed = _item(page, TYPED)
    assert "/portal/listen/" not in typed
    assert "(due: before next session)" in typed
    assert "From your therapist's notes of the session of 8 October 2026" in typed
    spoken = _item(page, SPOKEN)
    assert "into the session" in spoken
    assert len(listen_links(spoken)) == 1


def test_a_chat_answer_cites_the_typed_item_as_the_therapists_notes_without_a_quote(
    browser: Browser, homework: dict[str, Any]
) -> None:
    client, csrf = portal(browser, "bob@portal.example", FakeChatModel(reply="unused"))
    page = client.post("/portal/ask", data={"csrf_token": csrf, "question": QUESTION})
    assert page.status_code == 200
    answer = re.search(
        r'<li class="turn assistant".*?<ol class="citations">(.*?)</ol>', page.text, re.DOTALL
    )
    assert answer is not None
    cited = markup.unescape(answer.group(1))
    typed = _item(cited, TYPED)
    assert "/portal/listen/" not in typed
    assert "<q>" not in typed
    assert "into the session" not in typed
    assert "From your therapist's notes of the session of 8 October 2026" in typed
    spoken = _item(cited, SPOKEN)
    assert "<q>" in spoken
    assert "into the session" in spoken
    [link] = listen_links(spoken)
    assert client.get(link).status_code == 200


def test_the_chat_api_marks_the_typed_items_citation_as_not_in_the_recording(
    browser: Browser, homework: dict[str, Any]
) -> None:
    client, csrf = signed_in(browser, "bob@portal.example")
    client.app.state.chat_model = FakeChatModel(reply="unused")
    response = client.post(
        "/api/v1/chat", json={"question": QUESTION}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code == 200, response.text
    by_text = {c["excerpt"].split(",")[0].rstrip("."): c for c in response.json()["citations"]}
    assert by_text[TYPED]["in_recording"] is False
    assert by_text[SPOKEN]["in_recording"] is True
    assert by_text[SPOKEN]["end"] > by_text[SPOKEN]["start"]


@pytest.mark.parametrize(
    "window", ["start=0.00&end=0.00", "start=12.00&end=12.00", "start=30&end=5"]
)
def test_the_listen_endpoint_refuses_a_window_that_does_not_end_after_it_starts(
    browser: Browser, homework: dict[str, Any], window: str
) -> None:
    client, _ = portal(browser, "bob@portal.example")
    refused = client.get(f"/portal/listen/{homework['walks'].id}?{window}")
    assert refused.status_code == 422
    assert "audio/wav" not in refused.headers.get("content-type", "")


def test_a_moment_reads_as_a_position_in_the_session_not_a_time_of_day() -> None:
    assert elapsed(0) == "0:00"
    assert elapsed(185.7) == "3:05"
    assert elapsed(750) == "12:30"
    assert elapsed(3725) == "1:02:05"


def test_a_reminder_lists_the_due_text_after_due_not_by() -> None:
    line = describe(Item(TYPED, "every morning", "before next session"))
    assert line == "Take a 20-minute walk, every morning (due: before next session)"


def test_only_a_span_with_length_counts_as_a_moment_of_the_recording() -> None:
    assert facts.has_span(1.0, 2.5)
    assert not facts.has_span(0.0, 0.0)
    assert not facts.has_span(5.0, 4.0)


SAID = Source(61.0, 64.5, "therapist")
DRAFT = Report(
    homework=(HomeworkItem("Write down three good things", "every evening", None, (SAID,)),)
)


def _edited_homework(what: str) -> HomeworkItem:
    [item] = edited(DRAFT, ReportEdit(based_on=1, homework=[HomeworkIn(what=what)])).homework
    return item


def test_a_different_task_typed_over_a_drafted_row_does_not_take_that_rows_moment() -> None:
    typed = _edited_homework("Take a 20-minute walk")
    assert typed.by_therapist
    assert typed.sources == ()


def test_a_reworded_drafted_item_keeps_the_moment_it_was_said() -> None:
    reworded = _edited_homework("Write down three good things each day")
    assert reworded.by_therapist
    assert reworded.sources == (SAID,)


@pytest.mark.slow
def test_in_the_browser_the_streamed_answer_names_the_typed_item_as_notes_and_plays_the_spoken(
    chromium: Any,  # noqa: F811
    homework: dict[str, Any],
    settings: Settings,
    tmp_path: Path,
) -> None:
    """portal.js renders the citations of a streamed answer: the same rules as the server."""
    with serve(settings, tmp_path / "web.log") as base:
        context = chromium.new_context(base_url=base, viewport={"width": 390, "height": 844})
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto("/portal/login")
        page.get_by_label("E-mail address").fill("bob@portal.example")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/portal")
        page.get_by_label("Your question").fill(QUESTION)
        page.get_by_role("button", name="Ask").click()
        answer = page.locator("li.turn.assistant#answer")
        answer.wait_for(timeout=60_000)
        typed = answer.locator("ol.citations li", has_text=TYPED)
        assert "From your therapist's notes of the session of 8 October 2026" in typed.inner_text()
        assert typed.locator("a, q").count() == 0
        spoken = answer.locator("ol.citations li", has_text=SPOKEN)
        link = spoken.locator("a.play")
        assert re.fullmatch(
            r"Session of 8 October 2026, \d+:\d\d into the session", link.inner_text()
        )
        assert spoken.locator("q").count() == 1
        shots = REPO / "test-artifacts" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "patient-typed-homework-citation.png"), full_page=True)
        with page.expect_response(lambda r: "/portal/listen/" in r.url) as played:
            link.click()
        assert played.value.status == 200
        assert problems == []
        context.close()
