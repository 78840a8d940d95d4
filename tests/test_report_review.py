"""The therapist's report review over HTTP, on a real database: the report as JSON, risk flags
decided with a reason, edits as new versions that keep their sources, approval that releases
the session and turns the homework into the patient's list, regeneration, the console pages
(forms, CSRF, POST-redirect-GET) and the writing profile.

Drafts are stored through `reports.service.store_draft` (what the report stage calls), with
sources taken from a transcript the real stages made from fake speech, so the flag's times
and the withheld passage point at real lines and chunks.
"""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.chat import service as chat
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs import runner
from appliance.jobs.models import Job
from appliance.pipeline.transcripts import session_segments
from appliance.portal import service as portal
from appliance.recordings import service as sessions
from appliance.recordings.models import TherapySession
from appliance.recordings.schemas import SessionCreate
from appliance.reports import service as reports
from appliance.reports.document import (
    HomeworkItem,
    NoteFormat,
    Report,
    RiskFinding,
    RiskStatus,
    Source,
    Statement,
)
from appliance.reports.models import RiskCategory, WithheldSpan
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind, TranscriptChunk
from appliance.retrieval.search import searchable_sessions
from appliance.settings import Settings
from tests.audio import make_audio
from tests.chat_fakes import FakeChatModel
from tests.conftest import (
    CLINIC_IT,
    PASSWORD,
    Browser,
    add_recording,
    consented_session,
    signed_in,
    signed_in_admin,
)
from tests.retrieval_fixtures import TODAY, Clinic
from tests.speech_fakes import FakeSpeech, scripted

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MODEL_ID = "qwen2.5-0.5b-instruct-q4_k_m"
PROMPT_HASH = "ab" * 32
SESSION_DAY = date(2026, 11, 12)  # "last week" from TODAY
SCRIPT = scripted(
    ("SPEAKER_00", "How did the sleep diary go this week?"),
    ("SPEAKER_01", "Some nights I think everyone would be better off without me."),
    ("SPEAKER_00", "For homework, please keep the sleep diary every night."),
    ("SPEAKER_01", "I will, and I will walk by the river on Sunday."),
    seconds=8.0,
)
AI_CONSENTS = (Purpose.recording, Purpose.transcription, Purpose.ai_analysis, Purpose.patient_chat)


# --- a clinic with a drafted report ------------------------------------------------------------


@pytest.fixture
def clinic(session: Session, settings: Settings, store: KeyStore, database: Database) -> Clinic:
    return Clinic(session, settings, store, database, FakeSpeech())


def draft_for(
    session: Session, store: KeyStore, row: TherapySession, sources: list[Source]
) -> None:
    """What the report stage stores: an AI draft that flags one utterance."""
    first, risky, homework = sources[0], sources[1], sources[2]
    report = Report(
        summary=(
            Statement("The patient kept a sleep diary most nights.", (first,)),
            Statement("Low mood was discussed.", (risky,)),
        ),
        key_points=(Statement("Said others would be better off without them.", (risky,)),),
        interventions=(Statement("Reviewed the sleep diary.", (first,)),),
        homework=(HomeworkItem("Keep the sleep diary", "every night", None, (homework,)),),
        plan=(Statement("Review the diary at the next session.", (homework,)),),
        risk=(
            RiskFinding(
                RiskCategory.suicidal_ideation,
                RiskStatus.flagged,
                "Passive death wish.",
                (risky,),
            ),
        ),
    )
    reports.store_draft(
        session,
        store,
        row,
        report,
        note_format=NoteFormat.soap,
        model_id=MODEL_ID,
        prompt_hash=PROMPT_HASH,
    )
    session.commit()


@pytest.fixture
def recorded(
    clinic: Clinic, people: dict[str, UserPublic], alice: UserPublic, bob: PatientPublic
) -> TherapySession:
    """bob's session of SESSION_DAY through the real stages (fake speech), with a draft."""
    clinic.consent(bob, *AI_CONSENTS)
    made = sessions.add_session(
        clinic.session,
        CLINIC_IT,
        SessionCreate(patient_id=bob.id, session_date=SESSION_DAY, therapist_id=alice.id),
    )
    clinic.session.commit()
    row = clinic.session.get(TherapySession, made.id)
    assert row is not None
    clinic.speech.say(SCRIPT)
    add_recording(clinic.session, clinic.settings, clinic.store, row, make_audio("wav", 8.0))
    runner.drain(
        clinic.db,
        clinic.settings,
        clinic.store,
        "test-worker",
        clinic.speech.pipeline(),
        skip={"report"},  # drafts are stored by hand below: no LLM in these tests
    )
    segments = session_segments(clinic.session, clinic.store, row)
    assert len(segments) == 4
    sources = [Source(s.start, s.end, s.role or s.speaker or "unknown") for s in segments]
    draft_for(clinic.session, clinic.store, row, sources)
    return row


@pytest.fixture
def drafted(
    session: Session,
    store: KeyStore,
    people: dict[str, UserPublic],
    alice: UserPublic,
    bob: PatientPublic,
) -> TherapySession:
    """A draft without a recording (fast): for what needs no transcript."""
    row: TherapySession = consented_session(
        session, bob.id, alice.id, Purpose.recording, Purpose.ai_analysis
    )
    sources = [Source(2.0 * i, 2.0 * i + 1.9, "patient") for i in range(4)]
    draft_for(session, store, row, sources)
    return row


def api(browser: Browser, email: str) -> tuple[TestClient[Litestar], dict[str, str]]:
    client, csrf = signed_in(browser, email)
    return client, {"X-CSRF-Token": csrf}


def audit_rows(session: Session, action: str, outcome: str | None = None) -> list[AuditEvent]:
    session.expire_all()
    query = select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
    if outcome is not None:
        query = query.where(AuditEvent.outcome == outcome)
    return list(session.exec(query))


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


# --- the JSON API ------------------------------------------------------------------------------


def test_the_therapist_reads_the_draft_with_its_flags_sources_and_provenance(
    browser: Browser, drafted: TherapySession, session: Session
) -> None:
    alice, _ = api(browser, "alice@clinic.example")
    response = alice.get(f"/api/v1/sessions/{drafted.id}/report")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert body["source"] == "ai"
    assert body["note_format"] == "soap"
    assert body["summary"] == "The patient kept a sleep diary most nights. Low mood was discussed."
    assert body["summary_statements"][0]["sources"] == [
        {"start": 0.0, "end": 1.9, "speaker": "patient"}
    ]
    assert body["homework"] == [
        {
            "what": "Keep the sleep diary",
            "how_often": "every night",
            "due": None,
            "sources": [{"start": 4.0, "end": 5.9, "speaker": "patient"}],
            "by_therapist": False,
        }
    ]
    [flag] = body["risk_flags"]
    assert flag["category"] == "suicidal_ideation"
    assert flag["category_label"] == "Suicidal ideation"
    assert flag["status"] == "open"
    assert flag["utterances"] == [{"start": 2.0, "end": 3.9, "speaker": "patient"}]
    assert flag["reason"] is None
    assessed = {r["category"]: r["status"] for r in body["risk_assessment"]}
    assert assessed == {
        "suicidal_ideation": "flagged",
        "self_harm": "not_assessed",
        "harm_to_others": "not_assessed",
        "abuse_neglect": "not_assessed",
    }
    assert [s["title"] for s in body["sections"]] == [
        "Subjective",
        "Objective",
        "Assessment",
        "Plan",
    ]
    plan = next(s for s in body["sections"] if s["title"] == "Plan")
    assert plan["statements"][0]["text"] == "Keep the sleep diary (every night)"
    assert (body["model_id"], body["prompt_hash"]) == (MODEL_ID, PROMPT_HASH)
    assert body["approved_version"] is None
    assert [(v["version"], v["status"], v["source"]) for v in body["versions"]] == [
        (1, "draft", "ai")
    ]
    assert audit_rows(session, "report.read", "success")


@pytest.mark.parametrize("who", ["dora", "bob", "charlie", "adam", "audrey"])
def test_nobody_but_the_patients_therapist_finds_the_report_and_each_try_is_audited(
    browser: Browser, drafted: TherapySession, session: Session, who: str
) -> None:
    if who == "adam":
        client, csrf = signed_in_admin(browser)
    else:
        email = f"{who}@portal.example" if who in ("bob", "charlie") else f"{who}@clinic.example"
        client, csrf = signed_in(browser, email)
    headers = {"X-CSRF-Token": csrf}
    url = f"/api/v1/sessions/{drafted.id}/report"
    read = client.get(url)
    assert read.status_code == 404, read.text
    assert read.headers["content-type"].startswith("application/problem+json")
    assert read.json()["detail"] == "no such session"
    approved = client.post(f"{url}/approve", json={"version": 1, "release": True}, headers=headers)
    assert approved.status_code == 404
    edited = client.put(url, json={"based_on": 1, "summary": "mine now"}, headers=headers)
    assert edited.status_code == 404
    regenerated = client.post(f"{url}/regenerate", headers=headers)
    assert regenerated.status_code == 404
    actors = {row.actor_id for row in audit_rows(session, "report.read", "denied")}
    assert len(actors) == 1
    for action in ("report.approve", "report.edit", "report.regenerate"):
        [denied] = audit_rows(session, action, "denied")
        assert denied.object_id == str(drafted.id)
    session.refresh(drafted)
    assert not drafted.released
    assert audit_rows(session, "report.approve", "success") == []


def test_a_report_not_drafted_yet_is_a_404_that_says_why(
    browser: Browser,
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    alice: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    client, _ = api(browser, "alice@clinic.example")
    no_consent = consented_session(session, charlie.id, alice.id)
    response = client.get(f"/api/v1/sessions/{no_consent.id}/report")
    assert response.status_code == 404
    assert "ai_analysis" in response.json()["detail"]

    row = consented_session(session, bob.id, alice.id, Purpose.recording, Purpose.ai_analysis)
    response = client.get(f"/api/v1/sessions/{row.id}/report")
    assert response.status_code == 404
    assert "no recording" in response.json()["detail"]

    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    session.commit()
    response = client.get(f"/api/v1/sessions/{row.id}/report")
    assert response.status_code == 404
    assert "report job queued" in response.json()["detail"]


def test_approval_waits_for_each_flag_then_releases_the_session_and_its_homework(
    browser: Browser,
    recorded: TherapySession,
    clinic: Clinic,
    session: Session,
    store: KeyStore,
    settings: Settings,
    people: dict[str, UserPublic],
    bob: PatientPublic,
) -> None:
    alice, headers = api(browser, "alice@clinic.example")
    url = f"/api/v1/sessions/{recorded.id}/report"
    body = alice.get(url).json()
    [flag] = body["risk_flags"]
    risky = flag["utterances"][0]

    # Before approval the patient has no homework and nothing to ask about.
    assert (
        facts.approved_for(session, store, bob.id, [(recorded.id, SESSION_DAY)], list(FactKind))
        == []
    )

    refused = alice.post(f"{url}/approve", json={"version": 1, "release": True}, headers=headers)
    assert refused.status_code == 409
    assert "risk flag" in refused.json()["detail"]

    inbox = alice.get("/api/v1/risk-flags").json()
    assert [(f["id"], f["patient_name"], f["category_label"]) for f in inbox] == [
        (flag["id"], "Bob Brennan", "Suicidal ideation")
    ]
    assert inbox[0]["session_date"] == SESSION_DAY.isoformat()

    decide = f"/api/v1/risk-flags/{flag['id']}/decision"
    for reason in ("", "   "):
        missing = alice.post(
            decide, json={"decision": "dismissed", "reason": reason}, headers=headers
        )
        assert missing.status_code == 422, missing.text
    unknown = alice.post(decide, json={"decision": "ignored", "reason": "x"}, headers=headers)
    assert unknown.status_code == 422
    dora, dora_headers = api(browser, "dora@clinic.example")
    theirs = dora.post(decide, json={"decision": "dismissed", "reason": "no"}, headers=dora_headers)
    assert theirs.status_code == 404
    assert audit_rows(session, "risk_flag.decide", "denied")

    dismissed = alice.post(
        decide,
        json={"decision": "dismissed", "reason": "Known passive thoughts; safety plan in place."},
        headers=headers,
    )
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["reason"] == "Known passive thoughts; safety plan in place."
    again = alice.post(decide, json={"decision": "acknowledged", "reason": "x"}, headers=headers)
    assert again.status_code == 409
    assert alice.get("/api/v1/risk-flags").json() == []

    approved = alice.post(
        f"{url}/approve",
        json={
            "version": 1,
            "release": True,
            "withhold": [{"start": risky["start"], "end": risky["end"]}],
        },
        headers=headers,
    )
    assert approved.status_code == 200, approved.text
    report = approved.json()
    assert report["status"] == "approved"
    assert report["approved_at"] is not None
    assert report["risk_flags"][0]["status"] == "dismissed"
    assert [v["status"] for v in report["versions"]] == ["approved"]

    session.expire_all()
    row = session.get(TherapySession, recorded.id)
    assert row is not None
    assert row.released
    [audited] = audit_rows(session, "report.approve", "success")
    assert audited.details["model_id"] == MODEL_ID
    assert audited.details["prompt_hash"] == PROMPT_HASH
    assert audited.details["release"] is True
    assert audit_rows(session, "session.release", "success")

    # The withheld passage: kept as a span, and every chunk over it hidden from the patient.
    [span] = session.exec(select(WithheldSpan).where(WithheldSpan.session_id == recorded.id)).all()
    assert (span.start_seconds, span.end_seconds) == (risky["start"], risky["end"])
    chunks = session.exec(
        select(TranscriptChunk).where(TranscriptChunk.session_id == recorded.id)
    ).all()
    assert chunks
    for chunk in chunks:
        overlaps = chunk.start_seconds < risky["end"] and chunk.end_seconds > risky["start"]
        assert chunk.patient_visible is not overlaps

    # The approved homework is bob's homework list and the chat's first source.
    bob_actor = Actor(role="patient", user_id=people["bob"].id)
    [item] = portal.homework(session, store, bob_actor, bob.id)
    assert (item.text, item.frequency, item.session_id) == (
        "Keep the sleep diary",
        "every night",
        recorded.id,
    )
    known = facts.approved_for(
        session, store, bob.id, searchable_sessions(session, bob.id), [FactKind.plan]
    )
    assert [f.text for f in known] == ["Review the diary at the next session."]
    found = clinic.ask(bob, "What homework did we discuss last week?")
    assert found.hits[0].kind == "fact"
    assert found.hits[0].text == "Keep the sleep diary, every night."

    model = FakeChatModel(reply="Keep the sleep diary.")
    context = chat.ChatContext(
        session,
        store,
        settings,
        bob_actor,
        model,
        {"today": TODAY, "embedder": clinic.speech.embedder},
    )
    answer = chat.answer(context, bob.id, "What homework did we discuss last week?")
    assert not answer.refused, answer
    assert {c.session_id for c in answer.citations} == {recorded.id}


def test_an_edit_is_a_new_version_that_keeps_the_sources_of_what_stayed(
    browser: Browser, drafted: TherapySession, session: Session
) -> None:
    alice, headers = api(browser, "alice@clinic.example")
    url = f"/api/v1/sessions/{drafted.id}/report"
    draft = alice.get(url).json()
    kept_point = draft["key_points"][0]
    response = alice.put(
        url,
        json={
            "based_on": 1,
            "summary": [
                "The patient kept a sleep diary on five of seven nights.",  # edited in place
                draft["summary_statements"][1],  # as it was
            ],
            "key_points": [kept_point],
            "interventions": ["Reviewed the sleep diary.", "Introduced stimulus control."],
            "homework": [
                {"what": "Keep the sleep diary", "how_often": "every night"},
                {"what": "Get up after twenty minutes awake", "due": "next session"},
            ],
            "plan": [],
            "note_format": "birp",
        },
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["version"], body["status"], body["source"], body["based_on"]) == (
        2,
        "draft",
        "therapist",
        1,
    )
    assert body["note_format"] == "birp"
    assert [s["title"] for s in body["sections"]] == [
        "Behavior",
        "Intervention",
        "Response",
        "Plan",
    ]
    edited, kept = body["summary_statements"]
    assert edited["by_therapist"] is True
    assert edited["sources"] == draft["summary_statements"][0]["sources"]  # the line it replaced
    assert kept == draft["summary_statements"][1]
    assert body["key_points"] == [kept_point]
    assert [(s["text"], s["by_therapist"], len(s["sources"])) for s in body["interventions"]] == [
        ("Reviewed the sleep diary.", False, 1),
        ("Introduced stimulus control.", True, 0),
    ]
    assert body["homework"][0] == draft["homework"][0]
    assert body["homework"][1]["by_therapist"] is True
    assert body["homework"][1]["due"] == "next session"
    assert body["plan"] == []
    assert body["risk_flags"][0]["status"] == "open"  # flags are decided, never edited away
    assert (body["model_id"], body["prompt_hash"]) == (MODEL_ID, PROMPT_HASH)
    assert [(v["version"], v["status"], v["source"]) for v in body["versions"]] == [
        (1, "superseded", "ai"),
        (2, "draft", "therapist"),
    ]
    [audited] = audit_rows(session, "report.edit", "success")
    assert audited.details == {"version": 2, "based_on": 1}

    stale = alice.put(url, json={"based_on": 1, "summary": "again"}, headers=headers)
    assert stale.status_code == 409
    too_many = alice.put(
        url, json={"based_on": 2, "key_points": [f"point {i}" for i in range(41)]}, headers=headers
    )
    assert too_many.status_code == 422
    too_long = alice.put(url, json={"based_on": 2, "plan": ["x" * 2001]}, headers=headers)
    assert too_long.status_code == 422
    missing = alice.put(url, json={"based_on": 9}, headers=headers)
    assert missing.status_code == 404


def test_an_edit_after_approval_is_a_draft_beside_the_approval(
    browser: Browser, drafted: TherapySession
) -> None:
    alice, headers = api(browser, "alice@clinic.example")
    url = f"/api/v1/sessions/{drafted.id}/report"
    [flag] = alice.get(url).json()["risk_flags"]
    decided = alice.post(
        f"/api/v1/risk-flags/{flag['id']}/decision",
        json={"decision": "acknowledged", "reason": "Discussed; safety plan reviewed."},
        headers=headers,
    )
    assert decided.status_code == 200
    assert alice.post(f"{url}/approve", json={"version": 1}, headers=headers).status_code == 200
    again = alice.post(f"{url}/approve", json={"version": 1}, headers=headers)
    assert again.status_code == 409
    body = alice.put(url, json={"based_on": 1, "summary": "A shorter summary."}, headers=headers)
    assert body.status_code == 200, body.text
    report = body.json()
    assert (report["version"], report["status"], report["approved_version"]) == (2, "draft", 1)
    assert [v["status"] for v in report["versions"]] == ["approved", "draft"]
    bad = alice.post(
        f"{url}/approve", json={"version": 2, "withhold": [{"start": 5, "end": 1}]}, headers=headers
    )
    assert bad.status_code == 422


def test_regenerate_queues_the_report_job_again_and_wakes_the_workers(
    browser: Browser,
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    alice: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, alice.id, Purpose.recording, Purpose.ai_analysis)
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    session.commit()
    job = session.exec(select(Job).where(Job.stage == "report")).one()
    session.execute(
        update(Job).where(col(Job.id) == job.id).values(state="succeeded", attempts=1, progress=100)
    )
    session.commit()

    client, headers = api(browser, "alice@clinic.example")
    response = client.post(f"/api/v1/sessions/{row.id}/report/regenerate", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "session_id": str(row.id),
        "requeued": [str(job.id)],
        "state": "queued",
    }
    session.expire_all()
    requeued = session.get(Job, job.id)
    assert requeued is not None
    assert (requeued.state, requeued.attempts, requeued.progress) == ("queued", 0, 0)
    [audited] = audit_rows(session, "report.regenerate", "success")
    assert audited.details == {"job_id": str(job.id), "requeued": True}

    # Already queued: nothing to do, still accepted.
    twice = client.post(f"/api/v1/sessions/{row.id}/report/regenerate", headers=headers)
    assert twice.status_code == 202
    assert twice.json()["requeued"] == []

    # Without consent to AI analysis there is nothing to regenerate with.
    other = consented_session(session, charlie.id, alice.id)
    refused = client.post(f"/api/v1/sessions/{other.id}/report/regenerate", headers=headers)
    assert refused.status_code == 409
    assert "ai_analysis" in refused.json()["detail"]


def test_the_writing_profile_round_trips_and_is_the_therapists_own(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    alice, headers = api(browser, "alice@clinic.example")
    empty = alice.get("/api/v1/me/profile")
    assert empty.status_code == 200
    assert empty.json()["approach"] == ""
    assert empty.json()["updated_at"] is None
    saved = alice.put(
        "/api/v1/me/profile",
        json={
            "approach": "CBT",
            "tone": "concise, warm",
            "preferred_terms": "client",
            "example_notes": "S: Client reports improved sleep.",
        },
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    again = alice.get("/api/v1/me/profile").json()
    assert (again["approach"], again["tone"], again["preferred_terms"]) == (
        "CBT",
        "concise, warm",
        "client",
    )
    assert again["example_notes"] == "S: Client reports improved sleep."
    [audited] = audit_rows(session, "profile.update", "success")
    assert audited.details == {"fields": ["approach", "tone", "preferred_terms", "example_notes"]}
    too_long = alice.put("/api/v1/me/profile", json={"approach": "x" * 201}, headers=headers)
    assert too_long.status_code == 422

    dora, _ = api(browser, "dora@clinic.example")
    assert dora.get("/api/v1/me/profile").json()["approach"] == ""  # her own, not alice's
    bob, bob_headers = api(browser, "bob@portal.example")
    assert bob.get("/api/v1/me/profile").status_code == 403
    assert bob.put("/api/v1/me/profile", json={}, headers=bob_headers).status_code == 403


def test_the_report_endpoints_are_in_the_openapi_document(
    browser: Browser, people: dict[str, UserPublic]
) -> None:
    schema = browser().get("/schema/openapi.json").json()
    for path in (
        "/api/v1/sessions/{session_id}/report",
        "/api/v1/sessions/{session_id}/report/approve",
        "/api/v1/sessions/{session_id}/report/regenerate",
        "/api/v1/risk-flags",
        "/api/v1/risk-flags/{flag_id}/decision",
        "/api/v1/me/profile",
    ):
        assert path in schema["paths"], path
    assert not any(p.startswith("/console") for p in schema["paths"])


# --- the console -------------------------------------------------------------------------------


def console(browser: Browser, email: str = "alice@clinic.example") -> TestClient[Litestar]:
    client = browser()
    response = client.post(
        "/console/login", data={"email": email, "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 303
    return client


def test_the_console_report_page_decides_flags_and_approves_with_release(
    browser: Browser,
    recorded: TherapySession,
    session: Session,
    store: KeyStore,
    bob: PatientPublic,
) -> None:
    client = console(browser)
    url = f"/console/sessions/{recorded.id}/report"
    page = client.get(url)
    assert page.status_code == 200, page.text
    html = page.text
    for title in ("Subjective", "Objective", "Assessment", "Plan"):
        assert f">{title}</h3>" in html
    assert "<script" not in html  # CSP: nothing inline
    assert "style=" not in html
    [flag_action] = re.findall(r'action="(/console/sessions/[^"]+/report/flags/[^"]+)"', html)
    assert "Suicidal ideation" in html
    sources = set(re.findall(r'href="#(t-\d+)"', html))
    anchors = set(re.findall(r'<li id="(t-\d+)"', html))
    assert sources
    assert sources <= anchors  # every source links to a line of the transcript
    spans = re.findall(r'form="approve-form" name="withhold" value="([^"]+)"', html)
    assert len(spans) == 4
    assert 'name="release" value="yes"' in html
    token = csrf_of(page)

    refused = client.post(
        f"{url}/approve", data={"csrf_token": token, "version": "1", "release": "yes"}
    )
    assert refused.status_code == 409
    assert "still open" in refused.text
    no_reason = client.post(
        flag_action, data={"csrf_token": token, "decision": "dismissed", "reason": " "}
    )
    assert no_reason.status_code == 422
    assert "give a reason" in no_reason.text
    forged = client.post(
        flag_action,
        data={"csrf_token": "forged", "decision": "dismissed", "reason": "x"},
        follow_redirects=False,
    )
    assert forged.status_code == 403

    dismissed = client.post(
        flag_action,
        data={"csrf_token": token, "decision": "dismissed", "reason": "Known; safety plan held."},
        follow_redirects=False,
    )
    assert dismissed.status_code == 303
    assert client.get(dismissed.headers["location"]).text.count("Risk flag dismissed.") == 1

    approved = client.post(
        f"{url}/approve",
        data={"csrf_token": token, "version": "1", "release": "yes", "withhold": [spans[1]]},
        follow_redirects=False,
    )
    assert approved.status_code == 303, approved.text
    shown = client.get(approved.headers["location"]).text
    assert "the patient can now ask about this session" in shown
    assert "clinical-only</span>" in shown
    session.expire_all()
    row = session.get(TherapySession, recorded.id)
    assert row is not None
    assert row.released
    [span] = session.exec(select(WithheldSpan).where(WithheldSpan.session_id == recorded.id)).all()
    assert f"{span.start_seconds:.3f}:{span.end_seconds:.3f}" == spans[1]
    assert [
        f.text
        for f in facts.approved_for(
            session, store, bob.id, searchable_sessions(session, bob.id), [FactKind.homework]
        )
    ] == ["Keep the sleep diary"]


def test_the_console_edit_form_saves_a_new_version(
    browser: Browser, drafted: TherapySession, session: Session
) -> None:
    client = console(browser)
    url = f"/console/sessions/{drafted.id}/report"
    page = client.get(url)
    assert page.status_code == 200
    assert "The transcript is not available" in page.text  # no recording in this fixture
    assert 'name="homework_what" value="Keep the sleep diary"' in page.text
    token = csrf_of(page)
    saved = client.post(
        f"{url}/edit",
        data={
            "csrf_token": token,
            "based_on": "1",
            "note_format": "dap",
            "summary": "The patient kept a sleep diary most nights.\r\nMood was lower.\r\n",
            "key_points": "Said others would be better off without them.",
            "interventions": "Reviewed the sleep diary.",
            "plan": "",
            "homework_what": ["Keep the sleep diary", "Walk by the river", ""],
            "homework_how_often": ["every night", "on Sundays", ""],
            "homework_due": ["", "", ""],
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    shown = client.get(saved.headers["location"]).text
    assert "Your edit is saved as a new version." in shown
    assert ">Data</h3>" in shown
    assert "Walk by the river (on Sundays)" in shown
    assert "Mood was lower." in shown

    alice, _ = api(browser, "alice@clinic.example")
    body = alice.get(f"/api/v1/sessions/{drafted.id}/report").json()
    assert (body["version"], body["note_format"]) == (2, "dap")
    assert [s["by_therapist"] for s in body["summary_statements"]] == [False, True]
    assert [h["by_therapist"] for h in body["homework"]] == [False, True]

    stale = client.post(f"{url}/edit", data={"csrf_token": token, "based_on": "1"})
    assert stale.status_code == 409
    assert "replaced by a later one" in stale.text


def test_the_console_says_why_there_is_no_draft_and_can_regenerate(
    browser: Browser,
    session: Session,
    settings: Settings,
    store: KeyStore,
    people: dict[str, UserPublic],
    alice: UserPublic,
    bob: PatientPublic,
) -> None:
    row = consented_session(session, bob.id, alice.id, Purpose.recording, Purpose.ai_analysis)
    add_recording(session, settings, store, row, make_audio("wav", 2.0))
    session.commit()
    client = console(browser)
    page = client.get(f"/console/sessions/{row.id}/report")
    assert page.status_code == 200
    assert "the draft is queued" in page.text
    session.execute(update(Job).where(col(Job.stage) == "report").values(state="dead"))
    session.commit()
    page = client.get(f"/console/sessions/{row.id}/report")
    assert "drafting failed for good" in page.text
    again = client.post(
        f"/console/sessions/{row.id}/report/regenerate",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert "A new draft is on its way" in client.get(again.headers["location"]).text
    session.expire_all()
    assert session.exec(select(Job.state).where(Job.stage == "report")).one() == "queued"

    progress = client.get(f"/console/sessions/{row.id}")
    assert f'href="/console/sessions/{row.id}/report"' in progress.text


def test_the_console_risk_flag_inbox_lists_open_flags_of_my_patients(
    browser: Browser, drafted: TherapySession, session: Session
) -> None:
    client = console(browser)
    page = client.get("/console/risk-flags")
    assert page.status_code == 200
    assert 'href="/console/risk-flags"' in page.text  # in the navigation
    assert "Bob Brennan" in page.text
    assert "Suicidal ideation" in page.text
    assert f'href="/console/sessions/{drafted.id}/report#flag-' in page.text
    assert audit_rows(session, "risk_flag.list", "success")

    dora = console(browser, "dora@clinic.example")
    assert "Bob Brennan" not in dora.get("/console/risk-flags").text
    assert dora.get(f"/console/sessions/{drafted.id}/report").status_code == 404
    denied = audit_rows(session, "report.read", "denied")
    assert [row.object_id for row in denied] == [str(drafted.id)]


def test_the_console_profile_form_saves_the_writing_profile(
    browser: Browser, people: dict[str, UserPublic], session: Session
) -> None:
    client = console(browser)
    page = client.get("/console/profile")
    assert page.status_code == 200
    assert "de-identified" in page.text
    assert 'href="/console/profile"' in page.text
    saved = client.post(
        "/console/profile",
        data={
            "csrf_token": csrf_of(page),
            "approach": "ACT",
            "tone": "plain",
            "preferred_terms": "client",
            "example_notes": "D: Client practised defusion.",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303
    shown = client.get(saved.headers["location"]).text
    assert "Your writing profile is saved." in shown
    assert 'value="ACT"' in shown
    assert "D: Client practised defusion." in shown
    assert audit_rows(session, "profile.update", "success")
    unused = uuid.uuid4()
    assert client.get(f"/console/sessions/{unused}/report").status_code == 404
