"""Therapist messages with a human in the loop: drafted from approved homework in the
therapist's style, submitted, approved by a therapist of the patient's, and only then in the
patient's portal inbox. Every other route of the app is tried on a pending message, as every
role, and none of them sends it; the database refuses a sent row without an approval."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.auth.guards import Principal
from appliance.clinic.erasure import erase_patient
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.errors import Conflict
from appliance.messages import drafting, inbox, service
from appliance.messages.models import PatientMessage
from appliance.messages.schemas import MessageCreate, MessageUpdate
from appliance.recordings.models import TherapySession
from appliance.reports.models import TherapistProfile
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind
from appliance.settings import Settings
from tests.chat_fakes import FakeChatModel
from tests.conftest import CLINIC_IT, Browser, consented_session, signed_in, signed_in_admin

HOMEWORK = "Walk for twenty minutes after breakfast"
SECOND = "Write down one thing that went well each evening"
UNAPPROVED = "Call your sister about the holidays"
REPLY = "You did thoughtful work today. Here is what we agreed you would practise this week."
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def staff(user: UserPublic, role: Role = Role.therapist) -> Principal:
    return Principal(user.id, role, "cli", "local", "pytest")


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
    return list(session.exec(query))


def state_of(session: Session, message_id: uuid.UUID) -> PatientMessage:
    session.expire_all()
    row = session.get(PatientMessage, message_id)
    assert row is not None
    return row


@pytest.fixture
def therapy(
    session: Session, store: KeyStore, people: dict[str, UserPublic], bob: PatientPublic
) -> TherapySession:
    """A session of bob's with alice, with two approved homework items and one not approved,
    and bob's consent to AI analysis."""
    alice = people["alice"]
    row: TherapySession = consented_session(
        session, bob.id, alice.id, Purpose.recording, Purpose.ai_analysis
    )
    actor = Actor(role="therapist", user_id=alice.id)
    facts.add(session, store, actor, row, FactKind.homework, SECOND, start=300, end=320,
              approved=True)  # fmt: skip
    facts.add(session, store, actor, row, FactKind.homework, HOMEWORK, start=60, end=75,
              frequency="every day", approved=True)  # fmt: skip
    facts.add(session, store, actor, row, FactKind.homework, UNAPPROVED, start=400, end=410)
    session.commit()
    return row


@pytest.fixture
def pending(
    session: Session, store: KeyStore, people: dict[str, UserPublic], bob: PatientPublic
) -> Any:
    """Makes a message from alice to bob, submitted for approval; returns its id."""

    def make(subject: str = "Before next week") -> uuid.UUID:
        alice = staff(people["alice"])
        made = service.create(
            session, store, alice, MessageCreate(patient_id=bob.id, subject=subject, body="Hello")
        )
        service.submit(session, store, alice, made.id)
        session.commit()
        return made.id

    return make


def api(client: TestClient[Litestar], csrf: str, method: str, path: str, body: Any = None) -> Any:
    return client.request(method, path, json=body, headers={"X-CSRF-Token": csrf})


# Drafting -------------------------------------------------------------------------------


def test_a_reminder_is_drafted_from_the_approved_homework_in_the_therapists_style(
    session: Session, store: KeyStore, people: dict[str, UserPublic], therapy: TherapySession
) -> None:
    alice = people["alice"]
    session.add(
        TherapistProfile(
            user_id=alice.id,
            approach="CBT",
            tone="warm and brief",
            preferred_terms="practise, notice",
            example_notes="Client practised noticing thoughts.",
        )
    )
    session.commit()
    model = FakeChatModel(reply=REPLY)
    drafted = service.draft_reminder(session, store, staff(alice), model, therapy.id)
    session.commit()

    assert (drafted.state, drafted.source, drafted.model_id) == ("draft", "ai", "fake-chat")
    prompt = "\n".join(m.content for m in model.calls[0])
    assert HOMEWORK in prompt
    assert SECOND in prompt
    assert "every day" in prompt
    assert UNAPPROVED not in prompt  # only what the therapist approved
    assert "warm and brief" in prompt
    assert "practise, notice" in prompt
    assert "CBT" in prompt
    assert drafted.body.startswith(REPLY)
    assert f"- {HOMEWORK}, every day" in drafted.body
    assert drafted.body.index(HOMEWORK) < drafted.body.index(SECOND)  # session order
    assert UNAPPROVED not in drafted.body
    assert drafted.body.rstrip().endswith(alice.name)
    assert drafted.subject == "Your homework from our session on 14 November 2026"

    row = state_of(session, drafted.id)
    assert row.prompt_hash
    assert len(row.prompt_hash) == 64
    assert HOMEWORK.encode() not in row.body_enc  # sealed
    (entry,) = audit_rows(session, "message.draft")
    assert entry.object_id == str(drafted.id)
    assert entry.patient_id == therapy.patient_id
    assert entry.details["source"] == "ai"
    assert entry.details["items"] == 2
    assert "Walk" not in json.dumps(entry.details)  # ids, never text
    assert inbox.inbox(session, store, CLINIC_IT, therapy.patient_id) == []


def test_the_model_cannot_add_homework_and_a_failing_model_falls_back_to_the_template(
    session: Session, store: KeyStore, people: dict[str, UserPublic], therapy: TherapySession
) -> None:
    alice = staff(people["alice"])
    inventing = FakeChatModel(reply="Good session.\n- Run a marathon\n2. Stop your medication")
    drafted = service.draft_reminder(session, store, alice, inventing, therapy.id)
    assert "marathon" not in drafted.body
    assert "medication" not in drafted.body
    assert drafted.body.startswith("Good session.")
    assert HOMEWORK in drafted.body

    for model, reason in (
        (FakeChatModel(fail_after=0), "model_failed"),
        (FakeChatModel(reply="  - only a list  "), "empty_reply"),
    ):
        fallback = service.draft_reminder(session, store, alice, model, therapy.id)
        assert (fallback.source, fallback.model_id) == ("template", None)
        assert fallback.body.startswith("Here is a reminder of the homework we agreed on")
        assert HOMEWORK in fallback.body
        assert SECOND in fallback.body
        assert audit_rows(session, "message.draft")[-1].details["fallback"] == reason


def test_without_ai_consent_the_model_is_not_asked(
    session: Session, store: KeyStore, people: dict[str, UserPublic], therapy: TherapySession
) -> None:
    from appliance.consent import service as consent
    from appliance.consent.models import ConsentMethod, ConsentStatus

    consent.change(session, CLINIC_IT, therapy.patient_id, [Purpose.ai_analysis],
                   ConsentStatus.revoked, ConsentMethod.paper)  # fmt: skip
    model = FakeChatModel(reply=REPLY)
    drafted = service.draft_reminder(session, store, staff(people["alice"]), model, therapy.id)
    assert model.calls == []
    assert drafted.source == "template"
    assert HOMEWORK in drafted.body


def test_drafting_cleans_the_models_words() -> None:
    long = "Well done. " * 100
    cleaned = drafting.clean(f'Subject: Hi\n"{long}"\n\n\n<<<x>>>')
    assert len(cleaned) <= drafting.INTRO_MAX
    assert cleaned.endswith(".")
    assert "Subject" not in cleaned
    assert "<<<" not in cleaned
    assert drafting.clean("* a\n1) b\n   ") == ""


def test_no_approved_homework_is_a_409_and_another_therapists_session_a_404(
    browser: Browser, session: Session, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    bare = consented_session(session, bob.id, people["alice"].id)
    client, csrf = signed_in(browser, "alice@clinic.example")
    client.app.state.chat_model = FakeChatModel()
    refused = api(
        client, csrf, "POST", "/api/v1/messages/draft-reminder", {"session_id": str(bare.id)}
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "approve the session's report first" in refused.json()["detail"]

    dora, dora_csrf = signed_in(browser, "dora@clinic.example")
    body = {"session_id": str(bare.id)}
    assert api(dora, dora_csrf, "POST", "/api/v1/messages/draft-reminder", body).status_code == 404
    assert audit_rows(session, "message.draft")[-1].outcome == "denied"


# The lifecycle --------------------------------------------------------------------------


def test_draft_submit_approve_reaches_bobs_inbox_and_not_charlies(
    browser: Browser, session: Session, people: dict[str, UserPublic], therapy: TherapySession
) -> None:
    alice, csrf = signed_in(browser, "alice@clinic.example")
    alice.app.state.chat_model = FakeChatModel(reply=REPLY)
    bob, bob_csrf = signed_in(browser, "bob@portal.example")
    charlie, _ = signed_in(browser, "charlie@portal.example")

    drafted = api(alice, csrf, "POST", "/api/v1/messages/draft-reminder",
                  {"session_id": str(therapy.id)})  # fmt: skip
    assert drafted.status_code == 201, drafted.text
    message = drafted.json()
    path = f"/api/v1/messages/{message['id']}"
    assert bob.get("/api/v1/messages/inbox").json() == []  # a draft is nobody's mail

    submitted = api(alice, csrf, "POST", f"{path}/submit")
    assert submitted.status_code == 200
    assert submitted.json()["state"] == "pending"
    assert bob.get("/api/v1/messages/inbox").json() == []  # nor is a pending one
    assert bob.get(f"/api/v1/messages/inbox/{message['id']}").status_code == 404
    assert audit_rows(session, "message.read")[-1].outcome == "denied"

    approved = api(alice, csrf, "POST", f"{path}/approve", {"revision": message["revision"]})
    assert approved.status_code == 200, approved.text
    sent = approved.json()
    assert sent["state"] == "sent"
    assert sent["approved_by"] == str(people["alice"].id)
    assert sent["approved_at"]
    assert sent["sent_at"]

    (mail,) = bob.get("/api/v1/messages/inbox").json()
    assert mail["subject"] == message["subject"]
    assert HOMEWORK in mail["body"]
    assert mail["sender_name"] == people["alice"].name
    assert mail["read_at"] is None
    assert "state" not in mail  # a patient sees the message, not the workflow
    assert "model_id" not in mail
    assert charlie.get("/api/v1/messages/inbox").json() == []
    assert charlie.get(f"/api/v1/messages/inbox/{message['id']}").status_code == 404

    opened = bob.get(f"/api/v1/messages/inbox/{message['id']}")
    assert opened.status_code == 200
    assert opened.json()["read_at"] is not None
    again = bob.get(f"/api/v1/messages/inbox/{message['id']}").json()
    assert again["read_at"] == opened.json()["read_at"]  # the first opening stands

    actions = [e.action for e in audit_rows(session, "message.approve")]
    actions += [e.action for e in audit_rows(session, "message.send")]
    assert actions == ["message.approve", "message.send"]
    reads = [e for e in audit_rows(session, "message.read") if e.outcome == "success"]
    assert [e.details["first_read"] for e in reads] == [True, False]
    # Sent is final.
    assert api(alice, csrf, "PATCH", path, {"body": "changed"}).status_code == 409
    assert api(alice, csrf, "POST", f"{path}/reject").status_code == 409
    assert api(bob, bob_csrf, "POST", f"{path}/approve", {"revision": 1}).status_code == 403


def test_approval_needs_submission_first_and_names_the_revision_read(
    session: Session, store: KeyStore, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    alice = staff(people["alice"])
    made = service.create(
        session, store, alice, MessageCreate(patient_id=bob.id, subject="Hi", body="Draft text")
    )
    with pytest.raises(Conflict):
        service.approve(session, store, alice, made.id, made.revision)  # still a draft
    service.submit(session, store, alice, made.id)
    edited = service.edit(session, store, alice, made.id, MessageUpdate(body="Better text"))
    assert (edited.state, edited.revision, edited.body) == ("draft", 2, "Better text")
    assert edited.submitted_at is None  # an edit after submission must be submitted again
    service.submit(session, store, alice, made.id)
    with pytest.raises(Conflict):
        service.approve(session, store, alice, made.id, revision=1)  # not the text now
    sent = service.approve(session, store, alice, made.id, revision=2)
    session.commit()
    assert sent.state == "sent"
    assert sent.body == "Better text"

    (edit,) = audit_rows(session, "message.edit")
    assert edit.details == {"from": "pending", "to": "draft", "revision": 2, "changed": ["body"]}
    assert "Better" not in json.dumps(edit.details)
    assert [e.details["from"] for e in audit_rows(session, "message.submit")] == ["draft", "draft"]


def test_a_rejected_message_is_never_sent(
    browser: Browser, session: Session, people: dict[str, UserPublic], pending: Any
) -> None:
    message_id = pending()
    alice, csrf = signed_in(browser, "alice@clinic.example")
    rejected = api(alice, csrf, "POST", f"/api/v1/messages/{message_id}/reject")
    assert rejected.status_code == 200
    assert rejected.json()["state"] == "rejected"
    approve = api(alice, csrf, "POST", f"/api/v1/messages/{message_id}/approve", {"revision": 1})
    assert approve.status_code == 409
    row = state_of(session, message_id)
    assert row.state == "rejected"
    assert row.rejected_by == people["alice"].id
    assert row.approved_at is None
    assert row.sent_at is None
    bob, _ = signed_in(browser, "bob@portal.example")
    assert bob.get("/api/v1/messages/inbox").json() == []
    assert [e.outcome for e in audit_rows(session, "message.reject")] == ["success"]


def test_dora_cannot_approve_alices_patients_message_and_adam_may_only_read(
    browser: Browser, session: Session, people: dict[str, UserPublic], pending: Any
) -> None:
    message_id = pending()
    path = f"/api/v1/messages/{message_id}"
    dora, csrf = signed_in(browser, "dora@clinic.example")
    for action in ("approve", "reject", "submit"):
        refused = api(dora, csrf, "POST", f"{path}/{action}", {"revision": 1})
        assert refused.status_code == 404, refused.text
    assert api(dora, csrf, "PATCH", path, {"body": "x"}).status_code == 404
    assert dora.get(path).status_code == 404
    assert dora.get("/api/v1/messages").json() == []
    denied = audit_rows(session, "message.approve")
    assert [(e.outcome, e.actor_id, e.object_id) for e in denied] == [
        ("denied", people["dora"].id, str(message_id))
    ]

    adam, adam_csrf = signed_in_admin(browser)
    listed = adam.get("/api/v1/messages", params={"state": "pending"})
    assert [m["id"] for m in listed.json()] == [str(message_id)]
    assert adam.get(path).json()["patient_name"] == "Bob Brennan"
    assert api(adam, adam_csrf, "POST", f"{path}/approve", {"revision": 1}).status_code == 403
    audrey, _audrey_csrf = signed_in(browser, "audrey@clinic.example")
    assert audrey.get("/api/v1/messages").status_code == 403
    assert state_of(session, message_id).state == "pending"


def test_a_sent_message_without_approval_is_refused_by_the_database(
    session: Session, pending: Any, people: dict[str, UserPublic]
) -> None:
    message_id = pending()
    attempts = [
        "UPDATE patient_messages SET state = 'sent', sent_at = now() WHERE id = :id",
        "UPDATE patient_messages SET state = 'approved' WHERE id = :id",
        "UPDATE patient_messages SET state = 'sent', approved_by = :user, approved_at = now() "
        "WHERE id = :id",  # approved, but no time of sending
        "UPDATE patient_messages SET read_at = now() WHERE id = :id",  # a pending one, read
    ]
    for statement in attempts:
        with pytest.raises(IntegrityError, match="patient_message_"):
            session.execute(text(statement), {"id": message_id, "user": people["alice"].id})
        session.rollback()
    assert state_of(session, message_id).state == "pending"


def test_erasing_the_patient_deletes_their_messages(
    session: Session, settings: Settings, store: KeyStore, bob: PatientPublic, pending: Any
) -> None:
    message_id = pending()
    erase_patient(session, store, CLINIC_IT, settings.files_dir, bob.id)
    session.commit()
    session.expire_all()
    assert session.get(PatientMessage, message_id) is None


# Every route, every role ----------------------------------------------------------------

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
APPROVE_ROUTES = {
    ("POST", "/api/v1/messages/{message_id:uuid}/approve"),
    ("POST", "/console/messages/{message_id:uuid}/approve"),
}
SIGN_IN_OR_OUT = re.compile(r"/(login|logout)$")


def unsafe_routes(app: Litestar) -> list[tuple[str, str]]:
    """Every (method, path) of the app that can change something; sign-in and sign-out last,
    so that they cannot end the session the other calls use."""
    found = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method in UNSAFE
    }
    return sorted(found, key=lambda r: (bool(SIGN_IN_OR_OUT.search(r[1])), r[1], r[0]))


def plausible(ids: dict[str, uuid.UUID], revision: int, csrf: str, form: bool) -> dict[str, Any]:
    """A body that would fit most routes, nudging toward sending."""
    body: dict[str, Any] = {
        "state": "sent",
        "approved": True,
        "send": True,
        "revision": revision,
        "subject": "Sent without approval?",
        "body": "This must not reach the patient.",
        "message_id": str(ids["message"]),
        "patient_id": str(ids["patient"]),
        "session_id": str(ids["session"]),
        "question": "What homework did we discuss?",
        "purposes": ["patient_chat"],
        "purpose": "patient_chat",
        "action": "granted",
        "method": "paper",
        "code": "000000",
        "email": "nobody@clinic.example",
        "password": "not the right passphrase at all",
    }
    if form:
        body["purposes"] = "patient_chat"
        body["csrf_token"] = csrf
        body = {k: str(v) for k, v in body.items()}
    return body


def test_no_route_sends_a_message_without_a_therapists_approval(
    browser: Browser,
    session: Session,
    store: KeyStore,
    people: dict[str, UserPublic],
    bob: PatientPublic,
    therapy: TherapySession,
    pending: Any,
) -> None:
    message_id = pending()
    clients = {
        "bob": signed_in(browser, "bob@portal.example"),
        "charlie": signed_in(browser, "charlie@portal.example"),
        "dora": signed_in(browser, "dora@clinic.example"),
        "adam": signed_in_admin(browser),
        "audrey": signed_in(browser, "audrey@clinic.example"),
        "alice": signed_in(browser, "alice@clinic.example"),
    }
    routes = unsafe_routes(clients["alice"][0].app)
    assert set(routes) >= APPROVE_ROUTES  # renamed approval routes must be updated here
    assert len(routes) > 30
    ids = {"message": message_id, "patient": bob.id, "session": therapy.id}

    for name, (client, csrf) in clients.items():
        client.app.state.chat_model = FakeChatModel(reply=REPLY)
        for method, route in routes:
            if name == "alice" and (method, route) in APPROVE_ROUTES:
                continue
            path = re.sub(r"\{[^}]+\}", str(ids["message"]), route)
            form = not route.startswith("/api/")
            body = plausible(ids, state_of(session, ids["message"]).revision, csrf, form)
            if form:
                client.request(method, path, data=body, follow_redirects=False)
            else:
                client.request(
                    method, path, json=body, headers={"X-CSRF-Token": csrf}, follow_redirects=False
                )
            where = f"{name}: {method} {path}"
            sent = session.exec(
                select(PatientMessage).where(
                    PatientMessage.patient_id == bob.id,
                    col(PatientMessage.state).in_(["approved", "sent"])
                    | col(PatientMessage.approved_at).is_not(None),
                )
            ).all()
            assert sent == [], where
            row = state_of(session, ids["message"])
            if name != "alice":
                assert (row.state, row.revision) == ("pending", 1), where
            elif row.state != "pending":  # alice may edit (back to draft) or reject it
                assert row.state in ("draft", "rejected"), where
                ids["message"] = pending()
            if not SIGN_IN_OR_OUT.search(route):
                assert client.get("/api/v1/auth/me").status_code == 200, where

    assert inbox.inbox(session, store, CLINIC_IT, bob.id) == []
    session.commit()  # the audit entry's lock, before anyone else writes one
    bob_client, _ = signed_in(browser, "bob@portal.example")
    assert bob_client.get("/api/v1/messages/inbox").json() == []

    alice, csrf = signed_in(browser, "alice@clinic.example")
    revision = state_of(session, ids["message"]).revision
    approved = api(alice, csrf, "POST", f"/api/v1/messages/{ids['message']}/approve",
                   {"revision": revision})  # fmt: skip
    assert approved.status_code == 200, approved.text
    assert [m["id"] for m in bob_client.get("/api/v1/messages/inbox").json()] == [
        str(ids["message"])
    ]


# Console and portal pages ---------------------------------------------------------------


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def test_alice_drafts_submits_and_approves_in_the_console_and_bob_reads_it_in_the_portal(
    browser: Browser, session: Session, people: dict[str, UserPublic], therapy: TherapySession
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    alice.app.state.chat_model = FakeChatModel(reply=REPLY)
    session_page = alice.get(f"/console/sessions/{therapy.id}")
    assert "Draft a homework reminder" in session_page.text
    assert 'href="/console/messages"' in session_page.text  # the navigation's link
    csrf = csrf_of(session_page)

    drafted = alice.post(
        "/console/messages/draft-reminder",
        data={"csrf_token": csrf, "session_id": str(therapy.id)},
        follow_redirects=False,
    )
    assert drafted.status_code == 303
    assert drafted.headers["location"].startswith("/console/messages?done=drafted#message-")
    message_id = drafted.headers["location"].rsplit("#message-", 1)[1]
    listed = alice.get("/console/messages?done=drafted")
    assert "Reminder drafted" in listed.text
    assert HOMEWORK in listed.text
    assert "Submit for approval" in listed.text
    assert "Approve and send" not in listed.text

    def post(action: str, **fields: str) -> Any:
        return alice.post(
            f"/console/messages/{message_id}/{action}",
            data={"csrf_token": csrf, **fields},
            follow_redirects=False,
        )

    assert post("edit", subject="Your practice this week", body=f"{REPLY}\n\n- {HOMEWORK}",
                revision="1").status_code == 303  # fmt: skip
    assert post("submit", revision="2").status_code == 303
    waiting = alice.get("/console/messages")
    assert "Approve and send" in waiting.text
    assert "Your practice this week" in waiting.text
    assert post("approve", revision="1").status_code == 409  # not the text on the screen
    assert post("approve").status_code == 422
    assert (
        post("approve", revision="2").headers["location"].startswith("/console/messages?done=sent")
    )
    assert "Approved and sent" in alice.get("/console/messages?done=sent").text

    bob, _ = signed_in(browser, "bob@portal.example")
    home = bob.get("/portal")
    assert 'id="inbox"' in home.text
    assert "Your practice this week" in home.text
    assert "1 new message" in home.text
    assert "(new)" in home.text
    opened = bob.get(f"/portal/messages/{message_id}")
    assert opened.status_code == 200
    assert HOMEWORK in opened.text
    assert people["alice"].name in opened.text
    assert "(new)" not in bob.get("/portal").text
    charlie, _ = signed_in(browser, "charlie@portal.example")
    assert charlie.get(f"/portal/messages/{message_id}").status_code == 404
    assert "Your practice this week" not in charlie.get("/portal").text


def test_adam_sees_the_console_lists_without_buttons(
    browser: Browser, people: dict[str, UserPublic], pending: Any
) -> None:
    pending("For adam to see")
    adam, _ = signed_in_admin(browser)
    listed = adam.get("/console/messages")
    assert listed.status_code == 200
    assert "For adam to see" in listed.text
    assert "Approve and send" not in listed.text
    assert "Write a message" not in listed.text
    audrey, _ = signed_in(browser, "audrey@clinic.example")
    assert audrey.get("/console/messages").status_code == 403


def test_a_therapist_writes_a_message_of_their_own_in_the_console(
    browser: Browser, people: dict[str, UserPublic], bob: PatientPublic
) -> None:
    alice, _ = signed_in(browser, "alice@clinic.example")
    page = alice.get("/console/messages")
    assert "Bob Brennan" in page.text
    assert "Write a message" in page.text
    made = alice.post(
        "/console/messages",
        data={
            "csrf_token": csrf_of(page),
            "patient_id": str(bob.id),
            "subject": "Hello",
            "body": "See you on Thursday.",
        },
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert "See you on Thursday." in alice.get("/console/messages").text
    empty = alice.post(
        "/console/messages",
        data={"csrf_token": csrf_of(page), "patient_id": str(bob.id), "subject": " ", "body": ""},
    )
    assert empty.status_code == 422
    no_csrf = alice.post(
        "/console/messages", data={"patient_id": str(bob.id), "subject": "x", "body": "y"}
    )
    assert no_csrf.status_code == 403
