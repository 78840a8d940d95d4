"""The portal's homework, inbox, consents and my-data pages over HTTP without JavaScript,
against the real database: bob ticks homework, reads his inbox, withdraws and gives consent
with one press each, and downloads his data, which holds his own data and not one string of
charlie's. (The same journey in real Chromium at phone size: test_portal_journey_browser.py.)"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import pytest
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.auth.guards import Principal
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import ConsentEvent
from appliance.crypto.keystore import KeyStore
from appliance.messages import service as messages
from appliance.messages.schemas import MessageCreate
from appliance.pipeline.transcripts import session_segments
from appliance.recordings.models import TherapySession
from appliance.reports.withheld import withhold
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind, HomeworkCheck
from tests.conftest import PASSWORD, Browser
from tests.retrieval_fixtures import CANARY
from tests.test_portal import clinic, portal, practice  # noqa: F401  (bob's and charlie's sessions)

READ_AFTER = "Get up and read after twenty minutes awake"
WALK = "Keep walking three mornings a week"
NOT_CONFIRMED = "An idea the therapist has not confirmed"
CHARLIES_HOMEWORK = "Write the dream of the copper harbour down"
BOBS_SUBJECT = "Your practice this week"
BOBS_OLDER = "Notes from October"
DRAFT_SUBJECT = "A draft bob must never see"
CHARLIES_SUBJECT = "Charlie's note about the copper harbour"
WITHHELD = "For homework, please get up and read"


def audits(session: Session, action: str) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
    return list(session.exec(query))


def csrf_of(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


@pytest.fixture
def sent(
    session: Session,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    charlie: PatientPublic,
) -> dict[str, uuid.UUID]:
    """alice's messages: two sent to bob, one only submitted, one sent to charlie."""
    alice = people["alice"]
    sender = Principal(alice.id, Role.therapist, "cli", "local", "pytest")

    def message(patient: PatientPublic, subject: str, send: bool = True) -> uuid.UUID:
        made = messages.create(
            session,
            store,
            sender,
            MessageCreate(patient_id=patient.id, subject=subject, body="Hello"),
        )
        messages.submit(session, store, sender, made.id)
        if send:
            messages.approve(session, store, sender, made.id, made.revision)
        session.commit()
        return made.id

    return {
        "older": message(bob, BOBS_OLDER),
        "message": message(bob, BOBS_SUBJECT),
        "draft": message(bob, DRAFT_SUBJECT, send=False),
        "charlies_message": message(charlie, CHARLIES_SUBJECT),
    }


@pytest.fixture
def world(
    practice: Any,  # noqa: F811
    sent: dict[str, uuid.UUID],
    session: Session,
    store: KeyStore,
    people: dict[str, UserPublic],
) -> dict[str, Any]:
    """bob's and charlie's released sessions with approved homework and sent messages, one
    of bob's lines withheld as clinical-only; returns the ids the tests need."""
    alice = people["alice"]
    therapist = Actor(role="therapist", user_id=alice.id)
    sleep, walks, theirs = practice["sleep"], practice["walks"], practice["charlie"]

    def fact(row: TherapySession, text: str, approved: bool = True, **extra: Any) -> uuid.UUID:
        return facts.add(
            session,
            store,
            therapist,
            row,
            FactKind.homework,
            text,
            start=1.0,
            end=1.5,
            approved=approved,
            **extra,
        )

    ids = {
        "read": fact(sleep, READ_AFTER, frequency="every night"),
        "walk": fact(walks, WALK),
        "unapproved": fact(sleep, NOT_CONFIRMED, approved=False),
        "charlie": fact(theirs, CHARLIES_HOMEWORK),
    }
    [line] = [s for s in session_segments(session, store, sleep) if WITHHELD in s.text]
    withhold(session, therapist, sleep, [(line.start + 0.05, line.end - 0.05)])
    session.commit()
    return {**ids, **sent}


def test_bob_ticks_a_homework_item_done_and_undone_and_each_change_is_audited(
    browser: Browser, world: dict[str, Any], session: Session, bob: PatientPublic
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    listed = client.get("/portal/homework").text
    assert READ_AFTER in listed
    assert WALK in listed
    assert NOT_CONFIRMED not in listed
    assert CHARLIES_HOMEWORK not in listed
    assert "From your session of 12 November 2026" in listed  # the session it came from
    assert "0 of 2 done" in listed

    done = client.post(
        f"/portal/homework/{world['read']}",
        data={"csrf_token": csrf, "done": "1"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/portal/homework#item-{world['read']}"
    after = client.get("/portal/homework").text
    assert "1 of 2 done" in after
    assert "Mark as not done" in after
    session.expire_all()
    [tick] = session.exec(select(HomeworkCheck)).all()
    assert (tick.patient_id, tick.fact_id) == (bob.id, world["read"])

    again = {"csrf_token": csrf, "done": "1"}  # pressing twice is harmless
    assert client.post(f"/portal/homework/{world['read']}", data=again).status_code == 200
    undone = client.post(
        f"/portal/homework/{world['read']}", data={"csrf_token": csrf, "done": "0"}
    )
    assert "0 of 2 done" in undone.text
    session.expire_all()
    assert session.exec(select(HomeworkCheck)).all() == []
    rows = audits(session, "portal.homework.check")
    assert [r.details for r in rows] == [
        {"fact_id": str(world["read"]), "done": done} for done in (True, True, False)
    ]
    assert {r.outcome for r in rows} == {"success"}


def test_charlies_homework_item_or_an_unconfirmed_one_is_a_404_for_bob_and_audited(
    browser: Browser, world: dict[str, Any], session: Session
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    for other in (world["charlie"], world["unapproved"], uuid.uuid4()):
        refused = client.post(f"/portal/homework/{other}", data={"csrf_token": csrf, "done": "1"})
        assert refused.status_code == 404
    without_token = client.post(f"/portal/homework/{world['read']}", data={"done": "1"})
    assert without_token.status_code == 403
    session.expire_all()
    assert session.exec(select(HomeworkCheck)).all() == []
    denied = audits(session, "portal.homework.check")
    assert [r.outcome for r in denied] == ["denied"] * 3


def test_bob_withdraws_and_gives_chat_consent_with_one_press_each_recorded_as_his_portal_choice(
    browser: Browser, world: dict[str, Any], session: Session, bob: PatientPublic
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    page = client.get("/portal/consents").text
    for title in (
        "Recording your sessions",
        "Writing down what was said",
        "Draft notes for your therapist",
        "Asking about your sessions here",
    ):
        assert title in page
    assert "Not asked yet" in page  # ai_analysis was never asked in the practice
    assert "The Ask page and your homework list are turned off" in page  # the consequence

    withdrawn = client.post(
        "/portal/consents/patient_chat",
        data={"csrf_token": csrf, "decision": "withdraw"},
        follow_redirects=False,
    )
    assert withdrawn.status_code == 303
    assert withdrawn.headers["location"] == "/portal/consents?saved=1#consent-patient_chat"
    shown = client.get("/portal/consents?saved=1").text
    assert "Your choice is saved." in shown
    assert "withdrawn here in the portal by you" in shown
    assert 'id="ask"' not in client.get("/portal").text  # withdrawing hides the chat...
    assert READ_AFTER not in client.get("/portal/homework").text  # ... and the homework list

    given = client.post(
        "/portal/consents/patient_chat", data={"csrf_token": csrf, "decision": "give"}
    )
    assert given.status_code == 200
    assert 'id="ask"' in client.get("/portal").text

    session.expire_all()
    rows = session.exec(
        select(ConsentEvent)
        .where(ConsentEvent.patient_id == bob.id, ConsentEvent.method == "portal")
        .order_by(col(ConsentEvent.id))
    ).all()
    assert [(r.purpose, r.status, r.actor_role) for r in rows] == [
        ("patient_chat", "revoked", "patient"),
        ("patient_chat", "granted", "patient"),
    ]
    assert [r.details["method"] for r in audits(session, "consent.revoke")] == ["portal"]
    assert [r.details["method"] for r in audits(session, "consent.grant")][-1] == "portal"
    assert audits(session, "portal.consents")


def test_a_consent_form_cannot_name_another_patient_an_unknown_purpose_or_a_third_choice(
    browser: Browser, people: dict[str, UserPublic], session: Session, charlie: PatientPublic
) -> None:
    client, csrf = portal(browser, "bob@portal.example")

    def decide(path: str, **form: str) -> int:
        return int(client.post(path, data=form).status_code)

    sneaky = {"csrf_token": csrf, "decision": "withdraw", "patient_id": str(charlie.id)}
    assert decide("/portal/consents/patient_chat", **sneaky) == 200
    assert decide("/portal/consents/telepathy", csrf_token=csrf, decision="give") == 404
    assert decide("/portal/consents/recording", csrf_token=csrf, decision="maybe") == 422
    assert decide("/portal/consents/recording", decision="withdraw") == 403
    session.expire_all()
    charlies = session.exec(
        select(ConsentEvent).where(
            ConsentEvent.patient_id == charlie.id, ConsentEvent.method == "portal"
        )
    ).all()
    assert charlies == []  # the patient is always the signed-in one


def test_the_inbox_lists_only_bobs_sent_messages_newest_first_with_the_unread_marked(
    browser: Browser, sent: dict[str, uuid.UUID]
) -> None:
    client, _ = portal(browser, "bob@portal.example")
    html = client.get("/portal/messages").text
    assert html.index(BOBS_SUBJECT) < html.index(BOBS_OLDER)
    assert DRAFT_SUBJECT not in html
    assert CHARLIES_SUBJECT not in html
    assert "You have 2 new messages" in html
    assert f'href="/portal/messages/{sent["message"]}"' in html
    opened = client.get(f"/portal/messages/{sent['message']}").text
    assert 'href="/portal/messages"' in opened  # back to the inbox
    assert "You have 1 new message" in client.get("/portal/messages").text


def zip_of(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def test_bobs_data_download_holds_his_data_and_not_one_string_of_charlies(
    browser: Browser,
    world: dict[str, Any],
    session: Session,
    bob: PatientPublic,
    charlie: PatientPublic,
    practice: Any,  # noqa: F811
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    client.post(
        "/portal/ask", data={"csrf_token": csrf, "question": "Who did I walk by the river with?"}
    )
    client.post(f"/portal/homework/{world['read']}", data={"csrf_token": csrf, "done": "1"})
    client.get(f"/portal/messages/{world['message']}")
    assert "What is not included" in client.get("/portal/my-data").text

    response = client.post("/portal/my-data", data={"csrf_token": csrf})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"].startswith('attachment; filename="my-data-')
    files = zip_of(response.content)
    names = set(files)
    assert {
        "manifest.json",
        "README.txt",
        "profile.json",
        "consents.json",
        "sessions.json",
        "homework.json",
        "conversations.json",
        "messages.json",
    } <= names
    assert len([n for n in names if n.startswith("transcripts/")]) == 2

    manifest = json.loads(files["manifest.json"])
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == names - {"manifest.json"}
    assert manifest["counts"]["passages_left_out"] == 1
    assert "audio_recordings" in manifest["not_included"]
    assert json.loads(files["profile.json"])["name"] == bob.name
    sessions = json.loads(files["sessions.json"])
    assert {s["session_id"] for s in sessions} == {
        str(practice["sleep"].id),
        str(practice["walks"].id),
    }
    assert all(s["released_to_you"] and len(s["recordings"]) == 1 for s in sessions)
    transcripts = "".join(files[n] for n in names if n.startswith("transcripts/"))
    assert "Tomasz" in transcripts
    assert '"speaker": "patient"' in transcripts
    assert WITHHELD not in transcripts  # clinical-only stays with the clinic
    homework = json.loads(files["homework.json"])
    done = {i["text"]: i["done_at"] for i in homework["items"]}
    assert done[READ_AFTER] is not None
    assert done[WALK] is None
    assert NOT_CONFIRMED not in files["homework.json"]
    said = json.loads(files["conversations.json"])[0]["turns"]
    assert said[0]["text"] == "Who did I walk by the river with?"
    assert said[1]["citations"]
    inbox = json.loads(files["messages.json"])
    assert [m["subject"] for m in inbox] == [BOBS_OLDER, BOBS_SUBJECT]
    assert inbox[1]["read_at"] is not None
    assert "Ask your clinic for a copy" in files["README.txt"]

    everything = "\n".join(files.values())
    for secret in (
        CANARY,
        CHARLIES_HOMEWORK,
        CHARLIES_SUBJECT,
        DRAFT_SUBJECT,
        charlie.name,
        str(charlie.id),
        str(practice["charlie"].id),
        PASSWORD,
    ):
        assert secret not in everything
    assert "password" not in everything.lower()
    assert "totp" not in everything.lower()

    [exported] = audits(session, "portal.export")
    assert (exported.outcome, exported.patient_id) == ("success", bob.id)
    assert exported.details["transcripts"] == 2
    assert exported.details["messages"] == 2
    assert bob.name not in json.dumps(exported.details)


def test_a_second_download_within_the_minute_is_refused_on_the_page_and_audited(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    client, csrf = portal(browser, "bob@portal.example")
    assert client.post("/portal/my-data", data={"csrf_token": csrf}).status_code == 200
    again = client.post("/portal/my-data", data={"csrf_token": csrf})
    assert again.status_code == 429
    assert 0 < int(again.headers["retry-after"]) <= 61
    assert 'role="alert"' in again.text
    assert "please try again in" in again.text
    assert client.post("/portal/my-data", data={}).status_code == 403
    charlie, charlie_csrf = portal(browser, "charlie@portal.example")  # his own minute
    assert charlie.post("/portal/my-data", data={"csrf_token": charlie_csrf}).status_code == 200
    rows = audits(session, "portal.export")
    assert [r.outcome for r in rows] == ["success", "denied", "success"]


PORTAL_PAGES = ("/portal/homework", "/portal/messages", "/portal/consents", "/portal/my-data")


def test_staff_are_sent_to_the_console_from_every_portal_page_and_cannot_download(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    client = browser()
    form = {"email": "alice@clinic.example", "password": PASSWORD}
    assert client.post("/console/login", data=form).status_code == 200
    for path in PORTAL_PAGES:
        response = client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/console")
    csrf = csrf_of(client.get("/console/patients").text)
    for path in (
        "/portal/my-data",
        "/portal/consents/patient_chat",
        f"/portal/homework/{uuid.uuid4()}",
    ):
        posted = client.post(
            path, data={"csrf_token": csrf, "decision": "withdraw"}, follow_redirects=False
        )
        assert posted.headers["location"] == "/console"
    assert audits(session, "portal.export") == []
    stranger = browser()
    for path in PORTAL_PAGES:
        assert stranger.get(path, follow_redirects=False).headers["location"] == "/portal/login"


def test_the_navigation_shows_only_when_signed_in_and_marks_the_current_page(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    assert 'class="portal-nav"' not in browser().get("/portal/login").text
    client, _ = portal(browser, "bob@portal.example")
    for path in ("/portal", *PORTAL_PAGES):
        html = client.get(path).text
        assert 'class="portal-nav"' in html
        assert f'<a href="{path}" aria-current="page">' in html
        assert html.count('aria-current="page"') == 1
