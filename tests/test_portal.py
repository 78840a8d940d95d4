"""The patient portal over HTTP, without JavaScript: sign in, ask, the saved answer with its
citations, the homework list, and the cited minute played only to the patient it belongs to.
(The JavaScript path is driven in real Chromium in test_portal_browser.py.)"""

from __future__ import annotations

import base64
import io
import re
import time
import wave
from typing import Any

import pytest
from sqlmodel import Session, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.auth import totp
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind, TranscriptChunk
from appliance.settings import Settings
from tests.chat_fakes import FakeChatModel
from tests.conftest import PASSWORD, Browser, signed_in
from tests.retrieval_fixtures import Clinic, record_practice
from tests.speech_fakes import FakeSpeech

REPLY = "You walked by the river with your brother Tomasz on Sunday."


@pytest.fixture
def clinic(session: Session, settings: Settings, store: KeyStore, database: Database) -> Clinic:
    return Clinic(session, settings, store, database, FakeSpeech())


@pytest.fixture
def practice(
    clinic: Clinic,
    alice: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
    people: dict[str, UserPublic],
) -> Any:
    return record_practice(clinic, alice, bob, charlie)


def portal(browser: Browser, email: str, model: FakeChatModel | None = None) -> Any:
    """A browser signed in through the portal's own form; returns it with its CSRF token."""
    client = browser()
    client.app.state.chat_model = model or FakeChatModel(reply=REPLY)
    response = client.post("/portal/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text  # followed the redirect to /portal
    assert str(response.url).endswith("/portal")
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match
    return client, match.group(1)


def listen_links(html: str) -> list[str]:
    return [
        link.replace("&amp;", "&") for link in re.findall(r'href="(/portal/listen/[^"]+)"', html)
    ]


def test_the_portal_sends_a_stranger_to_its_sign_in_form(browser: Browser) -> None:
    client = browser()
    response = client.get("/portal", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/portal/login"
    form = client.get("/portal/login")
    assert 'action="/portal/login"' in form.text
    assert "<script" not in form.text  # nothing to run before sign-in


def test_a_wrong_password_is_refused_on_the_form_without_saying_which_part_was_wrong(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client = browser()
    response = client.post(
        "/portal/login", data={"email": "bob@portal.example", "password": "not it"}
    )
    assert response.status_code == 401
    assert 'role="alert"' in response.text
    assert "bob@portal.example" in response.text  # kept in the field, not retyped


def test_bob_asks_without_javascript_and_sees_the_cited_answer(
    browser: Browser, practice: Any
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    response = client.post(
        "/portal/ask",
        data={"csrf_token": csrf, "question": "Who did I walk by the river with?"},
    )
    assert response.status_code == 200
    html = response.text
    assert "Who did I walk by the river with?" in html
    assert "Tomasz" in html
    assert "Session of 8 October 2026" in html
    [link] = listen_links(html)
    assert str(practice["walks"].id) in link

    # A follow-up continues the same conversation.
    conversation = re.search(r'name="conversation_id" value="([^"]+)"', html)
    assert conversation
    assert conversation.group(1)
    again = client.post(
        "/portal/ask",
        data={
            "csrf_token": csrf,
            "question": "And on which day?",
            "conversation_id": conversation.group(1),
        },
    )
    assert again.text.count('class="turn patient') == 2


def test_a_question_without_the_csrf_token_is_refused_and_nothing_is_asked(
    browser: Browser, practice: Any
) -> None:
    model = FakeChatModel(reply=REPLY)
    client, _ = portal(browser, "bob@portal.example", model)
    response = client.post("/portal/ask", data={"question": "Who did I walk with?"})
    assert response.status_code == 403
    assert model.calls == []


def test_an_empty_question_is_shown_as_an_error_on_the_page(
    browser: Browser, practice: Any
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    response = client.post("/portal/ask", data={"csrf_token": csrf, "question": "   "})
    assert response.status_code == 422
    assert "the question is empty" in response.text


def test_the_cited_minute_plays_for_bob_as_wav_and_the_listen_is_audited(
    browser: Browser, practice: Any, session: Session
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    page = client.post(
        "/portal/ask", data={"csrf_token": csrf, "question": "Who did I walk by the river with?"}
    )
    [link] = listen_links(page.text)
    audio = client.get(link)
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.headers["cache-control"] == "no-store"
    with wave.open(io.BytesIO(audio.content)) as clip:
        assert clip.getframerate() == 16000
        assert clip.getnchannels() == 1
        assert clip.getnframes() > 0
    row = session.exec(select(AuditEvent).where(AuditEvent.action == "portal.listen")).one()
    assert row.outcome == "success"
    assert row.object_id == str(practice["walks"].id)


def test_charlie_cannot_play_bobs_session_and_the_attempt_is_audited(
    browser: Browser, practice: Any, session: Session
) -> None:
    bob_client, csrf = portal(browser, "bob@portal.example")
    page = bob_client.post(
        "/portal/ask", data={"csrf_token": csrf, "question": "Who did I walk by the river with?"}
    )
    [link] = listen_links(page.text)
    charlie_client, _ = portal(browser, "charlie@portal.example")
    response = charlie_client.get(link)
    assert response.status_code == 404
    assert "audio" not in response.headers.get("content-type", "")
    denied = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "portal.listen", AuditEvent.outcome == "denied"
        )
    ).all()
    assert len(denied) == 1


def test_a_clinical_only_passage_or_an_unreleased_session_does_not_play(
    browser: Browser, practice: Any, session: Session, clinic: Clinic
) -> None:
    walks = practice["walks"]
    chunk = session.exec(
        select(TranscriptChunk).where(TranscriptChunk.session_id == walks.id)
    ).first()
    assert chunk is not None
    client, _ = portal(browser, "bob@portal.example")
    link = f"/portal/listen/{walks.id}?start={chunk.start_seconds:.2f}&end={chunk.end_seconds:.2f}"
    assert client.get(link).status_code == 200

    chunk.patient_visible = False
    session.add(chunk)
    session.commit()
    assert client.get(link).status_code == 404

    chunk.patient_visible = True
    walks.released = False
    session.add_all([chunk, walks])
    session.commit()
    assert client.get(link).status_code == 404


def test_bad_times_are_a_clear_error(browser: Browser, practice: Any) -> None:
    client, _ = portal(browser, "bob@portal.example")
    walks = practice["walks"].id
    assert client.get(f"/portal/listen/{walks}?start=-5&end=3").status_code == 422
    assert client.get(f"/portal/listen/{walks}?start=abc&end=3").status_code == 400


def test_approved_homework_is_listed_and_unapproved_is_not(
    browser: Browser, practice: Any, session: Session, store: KeyStore, alice: UserPublic
) -> None:
    therapist = Actor(role="therapist", user_id=alice.id)
    sleep = practice["sleep"]
    for text, approved in (("Get up and read after twenty minutes awake", True),
                           ("An idea the therapist has not confirmed", False)):  # fmt: skip
        facts.add(
            session, store, therapist, sleep, FactKind.homework, text,
            start=1.0, end=2.0, frequency="every night", approved=approved,
        )  # fmt: skip
    session.commit()
    client, _ = portal(browser, "bob@portal.example")
    html = client.get("/portal").text
    assert "Get up and read after twenty minutes awake" in html
    assert "every night" in html
    assert "not confirmed" not in html
    charlie, _ = portal(browser, "charlie@portal.example")
    assert "Get up and read" not in charlie.get("/portal").text


def test_without_chat_consent_the_portal_says_so_instead_of_offering_the_form(
    browser: Browser, practice: Any, clinic: Clinic, bob: PatientPublic
) -> None:
    clinic.consent(bob, Purpose.patient_chat, revoke=True)
    client, _ = portal(browser, "bob@portal.example")
    html = client.get("/portal").text
    assert 'id="ask"' not in html
    assert "turned off" in html


def test_staff_who_open_the_portal_are_sent_to_the_console(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client = browser()
    response = client.post(
        "/portal/login",
        data={"email": "alice@clinic.example", "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert client.get("/portal", follow_redirects=False).headers["location"] == "/console"


def test_a_patient_with_an_authenticator_signs_in_to_the_portal_with_the_one_time_code(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    client, csrf = signed_in(browser, "bob@portal.example")
    setup = client.post("/api/v1/auth/totp/setup", headers={"X-CSRF-Token": csrf}).json()
    secret = base64.b32decode(setup["secret"])
    confirmed = client.post(
        "/api/v1/auth/totp/confirm",
        json={"code": totp.code_for(secret)},
        headers={"X-CSRF-Token": csrf},
    )
    assert confirmed.status_code == 204

    phone = browser()
    form = {"email": "bob@portal.example", "password": PASSWORD}
    assert phone.post("/portal/login", data=form).status_code == 401
    code = totp.code_for(secret, time.time() + totp.STEP)  # the confirmed code is spent
    signed = phone.post("/portal/login", data={**form, "totp_code": code})
    assert signed.status_code == 200
    assert str(signed.url).endswith("/portal")
