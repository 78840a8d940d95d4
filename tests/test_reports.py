"""Session reports against the real database: drafts are stored as sealed versions, risk flags
must be decided before approval, approval turns homework into the patient's facts (audited with
the model and prompt that drafted it), edits are new versions, withheld passages stay hidden.
The drafter itself is tested in test_report_draft.py; here reports are written by hand or by
the real `report` stage over fake speech."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.errors import Conflict, Invalid, NotFound
from appliance.jobs.models import Job
from appliance.recordings.models import TherapySession
from appliance.reports import flags, service, withheld
from appliance.reports.document import (
    HomeworkItem,
    NoteFormat,
    Report,
    RiskFinding,
    RiskStatus,
    Source,
    Statement,
)
from appliance.reports.models import FlagStatus, ReportStatus, RiskCategory, SessionReport
from appliance.retrieval import facts
from appliance.retrieval.models import FactKind, SessionFact, TranscriptChunk
from appliance.settings import Settings
from tests.conftest import consented_session
from tests.retrieval_fixtures import Clinic, scripted
from tests.speech_fakes import FakeSpeech

THERAPIST = Source(10.0, 14.0, "therapist")
PATIENT = Source(14.0, 19.0, "patient")
DRAFT = Report(
    summary=(Statement("Sleep diary reviewed; onset delay improving.", (THERAPIST, PATIENT)),),
    homework=(HomeworkItem("Keep the sleep diary", "every morning", "next session", (THERAPIST,)),),
    plan=(Statement("Introduce stimulus control next session.", (THERAPIST,)),),
    risk=(
        RiskFinding(RiskCategory.suicidal_ideation, RiskStatus.flagged, "", (PATIENT,)),
        RiskFinding(RiskCategory.self_harm, RiskStatus.not_assessed),
    ),
)


@pytest.fixture
def row(session: Session, bob: PatientPublic, alice: UserPublic) -> TherapySession:
    made = consented_session(session, bob.id, alice.id, Purpose.recording, Purpose.ai_analysis)
    found = session.get(TherapySession, made.id)
    assert found is not None
    return found


def therapist(user: UserPublic) -> Actor:
    return Actor(role="therapist", user_id=user.id)


def drafted(session: Session, store: KeyStore, row: TherapySession, report: Report = DRAFT) -> None:
    service.store_draft(
        session,
        store,
        row,
        report,
        note_format=NoteFormat.soap,
        model_id="qwen-test@sha256:abc",
        prompt_hash="f" * 64,
    )
    session.commit()


def audit_rows(session: Session, action: str) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def decide_all(session: Session, store: KeyStore, alice: UserPublic, row: TherapySession) -> None:
    for flag in flags.for_session(session, store, row.id):
        flags.decide(
            session,
            store,
            therapist(alice),
            [row.patient_id],
            flag.id,
            FlagStatus.dismissed,
            "Reviewed: passive thought, safety plan in place",
        )
    session.commit()


def test_a_stored_draft_is_a_sealed_version_with_an_open_flag_linked_to_the_utterance(
    session: Session, store: KeyStore, alice: UserPublic, row: TherapySession
) -> None:
    drafted(session, store, row)
    stored = session.exec(select(SessionReport)).one()
    assert (stored.version, stored.status, stored.source) == (1, "draft", "ai")
    assert b"sleep diary" not in stored.body_enc.lower()
    [flag] = flags.for_session(session, store, row.id)
    assert (flag.category, flag.status, flag.evidence) == (
        RiskCategory.suicidal_ideation,
        FlagStatus.open,
        (PATIENT,),
    )
    [event] = audit_rows(session, "report.draft")
    assert event.details["model_id"] == "qwen-test@sha256:abc"
    found = service.versions(session, store, therapist(alice), row)
    assert found[0].report == DRAFT
    assert found[0].report.finding(RiskCategory.harm_to_others).status == RiskStatus.not_assessed


def test_a_report_with_an_open_risk_flag_cannot_be_approved(
    session: Session, store: KeyStore, alice: UserPublic, row: TherapySession
) -> None:
    drafted(session, store, row)
    with pytest.raises(Conflict, match="risk flag"):
        service.approve(session, store, therapist(alice), row, 1, service.Approval(release=True))
    session.rollback()
    assert session.exec(select(SessionFact)).all() == []
    assert not session.get(TherapySession, row.id).released  # type: ignore[union-attr]


def test_a_risk_decision_needs_a_reason_and_a_therapist_who_sees_the_patient(
    session: Session,
    store: KeyStore,
    alice: UserPublic,
    people: dict[str, UserPublic],
    row: TherapySession,
) -> None:
    drafted(session, store, row)
    [flag] = flags.for_session(session, store, row.id)
    with pytest.raises(Invalid, match="reason"):
        flags.decide(
            session,
            store,
            therapist(alice),
            [row.patient_id],
            flag.id,
            FlagStatus.acknowledged,
            "  ",
        )
    with pytest.raises(NotFound):
        flags.decide(
            session, store, therapist(people["dora"]), [], flag.id, FlagStatus.dismissed, "not mine"
        )
    assert [e.outcome for e in audit_rows(session, "risk_flag.decide")] == ["denied"]
    decided = flags.decide(
        session,
        store,
        therapist(alice),
        [row.patient_id],
        flag.id,
        FlagStatus.acknowledged,
        "Safety plan reviewed with the patient",
    )
    session.commit()
    assert (decided.status, decided.reason) == (
        FlagStatus.acknowledged,
        "Safety plan reviewed with the patient",
    )
    with pytest.raises(Conflict):
        flags.decide(
            session,
            store,
            therapist(alice),
            [row.patient_id],
            flag.id,
            FlagStatus.dismissed,
            "again",
        )


def test_approval_turns_homework_into_approved_facts_and_releases_the_session(
    session: Session, store: KeyStore, alice: UserPublic, row: TherapySession
) -> None:
    drafted(session, store, row)
    decide_all(session, store, alice, row)
    approved = service.approve(
        session, store, therapist(alice), row, 1, service.Approval(release=True)
    )
    session.commit()
    assert approved.status == ReportStatus.approved
    assert session.get(TherapySession, row.id).released  # type: ignore[union-attr]
    found = facts.approved_for(
        session, store, row.patient_id, [(row.id, row.session_date)], list(FactKind)
    )
    assert {(f.kind, f.text, f.frequency) for f in found} == {
        (FactKind.homework, "Keep the sleep diary", "every morning"),
        (FactKind.plan, "Introduce stimulus control next session.", None),
    }
    assert (found[0].start, found[0].end) in {(10.0, 14.0)}
    [event] = audit_rows(session, "report.approve")
    assert event.actor_id == alice.id
    assert event.details["model_id"] == "qwen-test@sha256:abc"
    assert event.details["prompt_hash"] == "f" * 64
    assert event.details["release"] is True


def test_an_edit_is_a_new_version_and_the_replaced_draft_cannot_be_approved(
    session: Session, store: KeyStore, alice: UserPublic, row: TherapySession
) -> None:
    drafted(session, store, row)
    decide_all(session, store, alice, row)
    edited = Report(
        summary=(Statement("Diary kept five of seven days.", (PATIENT,), by_therapist=True),),
        homework=(HomeworkItem("Walk after lunch", "daily", None, (), by_therapist=True),),
    )
    version = service.edit(session, store, therapist(alice), row, 1, edited)
    session.commit()
    assert (version.version, version.source, version.based_on) == (2, "therapist", 1)
    assert version.model_id == "qwen-test@sha256:abc"  # provenance kept through the edit
    with pytest.raises(Conflict, match="replaced"):
        service.approve(session, store, therapist(alice), row, 1, service.Approval())
    session.rollback()
    service.approve(session, store, therapist(alice), row, 2, service.Approval())
    session.commit()
    statuses = [v.status.value for v in service.versions(session, store, therapist(alice), row)]
    assert statuses == ["superseded", "approved"]
    [fact] = facts.approved_for(
        session, store, row.patient_id, [(row.id, row.session_date)], [FactKind.homework]
    )
    assert fact.text == "Walk after lunch"


def test_a_new_approval_replaces_the_previous_one_and_its_facts(
    session: Session, store: KeyStore, alice: UserPublic, row: TherapySession
) -> None:
    drafted(session, store, row)
    decide_all(session, store, alice, row)
    service.approve(session, store, therapist(alice), row, 1, service.Approval())
    session.commit()
    drafted(
        session,
        store,
        row,
        Report(homework=(HomeworkItem("Call your sister", sources=(PATIENT,)),)),
    )
    service.approve(session, store, therapist(alice), row, 2, service.Approval())
    session.commit()
    rows = session.exec(select(SessionReport).order_by(col(SessionReport.version))).all()
    assert [r.status for r in rows] == ["superseded", "approved"]
    texts = [
        f.text
        for f in facts.approved_for(
            session, store, row.patient_id, [(row.id, row.session_date)], list(FactKind)
        )
    ]
    assert texts == ["Call your sister"]


def test_the_same_risk_at_the_same_place_is_not_raised_again_by_a_regenerated_draft(
    session: Session, store: KeyStore, alice: UserPublic, row: TherapySession
) -> None:
    drafted(session, store, row)
    decide_all(session, store, alice, row)
    drafted(session, store, row)
    assert [f.status for f in flags.for_session(session, store, row.id)] == [FlagStatus.dismissed]
    assert flags.open_count(session, row.id) == 0


@pytest.mark.parametrize("role", ["admin", "patient", "auditor"])
def test_only_a_therapist_reads_or_approves_a_report(
    session: Session, store: KeyStore, row: TherapySession, adam: UserPublic, role: str
) -> None:
    drafted(session, store, row)
    actor = Actor(role=role, user_id=adam.id)
    with pytest.raises(NotFound):
        service.versions(session, store, actor, row)
    with pytest.raises(NotFound):
        service.approve(session, store, actor, row, 1, service.Approval(release=True))
    assert {e.outcome for e in audit_rows(session, "report.read")} == {"denied"}
    assert [e.outcome for e in audit_rows(session, "report.approve")] == ["denied"]


def test_withheld_passages_stay_hidden_after_the_recording_is_chunked_again(
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    bob: PatientPublic,
    alice: UserPublic,
) -> None:
    clinic = Clinic(session, settings, store, database, FakeSpeech())
    clinic.consent(bob, Purpose.recording, Purpose.transcription, Purpose.patient_chat)
    row = clinic.recorded(
        bob,
        alice,
        date(2026, 11, 3),
        scripted(
            ("SPEAKER_00", "How was the week?"),
            ("SPEAKER_01", "My brother's court case is weighing on me."),
            ("SPEAKER_00", "Please keep the worry log every evening."),
        ),
        release=False,
    )
    chunks = session.exec(select(TranscriptChunk).where(TranscriptChunk.session_id == row.id)).all()
    assert chunks
    assert all(c.patient_visible for c in chunks)
    first = min(chunks, key=lambda c: c.start_seconds)
    span = (first.start_seconds, first.end_seconds)
    before = {c.id for c in chunks}
    hidden = withheld.withhold(session, therapist(alice), row, [span])
    session.commit()
    assert hidden >= 1
    from appliance.jobs import service as jobs

    job = session.exec(select(Job).where(Job.stage == "chunk")).one()
    jobs.rerun_after(session, job.recording_id, "attribute")
    session.commit()
    clinic.run()
    session.expire_all()
    again = session.exec(select(TranscriptChunk).where(TranscriptChunk.session_id == row.id)).all()
    assert {c.id for c in again}.isdisjoint(before)  # chunked anew
    overlapping = [c for c in again if c.start_seconds < span[1] and c.end_seconds > span[0]]
    assert overlapping
    assert not any(c.patient_visible for c in overlapping)
    assert all(c.patient_visible for c in again if c not in overlapping)


def test_erasing_the_patient_removes_reports_and_flags(
    session: Session,
    settings: Settings,
    store: KeyStore,
    row: TherapySession,
    bob: PatientPublic,
) -> None:
    from appliance.audit.service import cli_actor
    from appliance.clinic import erasure

    drafted(session, store, row)
    erasure.erase_patient(session, store, cli_actor(), settings.files_dir, bob.id)
    session.commit()
    assert session.exec(select(SessionReport)).all() == []
    assert flags.for_session(session, store, row.id) == []


@pytest.fixture
def clinic(
    session: Session, settings: Settings, store: KeyStore, database: Database, bob: PatientPublic
) -> Clinic:
    """alice's practice with fake speech; bob consents to recording, transcription and AI
    analysis. The fake speech's report model replies nothing, so what a draft holds is what
    the appliance's own detectors found."""
    practice = Clinic(session, settings, store, database, FakeSpeech())
    practice.consent(bob, Purpose.recording, Purpose.transcription, Purpose.ai_analysis)
    return practice


def test_the_report_stage_drafts_from_the_transcript_and_flags_the_disclosure_itself(
    session: Session, store: KeyStore, clinic: Clinic, bob: PatientPublic, alice: UserPublic
) -> None:
    row = clinic.recorded(
        bob,
        alice,
        date(2026, 11, 10),
        scripted(  # two seconds of fake audio; roles by talk time: the patient talks most
            ("SPEAKER_01", "How were the evenings? For homework, call the crisis line card."),
            ("SPEAKER_00", "Honestly, some nights I think about killing myself."),
            ("SPEAKER_00", "I will keep the card in my wallet."),
        ),
        release=False,
    )
    [job] = session.exec(select(Job).where(Job.stage == "report")).all()
    assert job.state == "succeeded"
    [version] = service.versions(session, store, therapist(alice), row)
    finding = version.report.finding(RiskCategory.suicidal_ideation)
    assert finding.status == RiskStatus.flagged
    [source] = finding.sources
    assert source.speaker == "patient"
    [flag] = flags.for_session(session, store, row.id)
    assert (flag.status, flag.evidence) == (FlagStatus.open, (source,))
    assert version.report.finding(RiskCategory.abuse_neglect).status == RiskStatus.not_assessed
    assert version.model_id == "fake-chat"
    assert clinic.speech.reporter.calls  # the model was asked, window by window


def test_after_approval_the_patient_asking_about_homework_gets_the_approved_items_word_for_word(
    session: Session,
    settings: Settings,
    store: KeyStore,
    clinic: Clinic,
    bob: PatientPublic,
    alice: UserPublic,
) -> None:
    from appliance.chat import service as chat
    from tests.chat_fakes import FakeChatModel
    from tests.retrieval_fixtures import TODAY

    clinic.consent(bob, Purpose.patient_chat)
    row = clinic.recorded(
        bob,
        alice,
        date(2026, 11, 17),
        scripted(
            ("SPEAKER_01", "For homework, please keep the worry log every evening."),
            ("SPEAKER_00", "The worry log helped a little last time."),
            ("SPEAKER_00", "I will try to keep it next to my bed."),
        ),
        release=False,
    )
    [version] = service.versions(session, store, therapist(alice), row)
    assert [h.what for h in version.report.homework] == ["Keep the worry log"]
    service.approve(session, store, therapist(alice), row, 1, service.Approval(release=True))
    session.commit()
    model = FakeChatModel(reply="You were asked to run a marathon.")
    context = chat.ChatContext(
        session,
        store,
        settings,
        Actor(role="patient", user_id=None),
        model,
        {"today": TODAY, "embedder": clinic.speech.embedder},
    )
    answered = chat.answer(context, bob.id, "What homework did I get?")
    assert (answered.refused, answered.answer) == (False, "Keep the worry log, every evening.")
    [citation] = answered.citations
    assert (citation.session_id, citation.speaker) == (row.id, None)
    assert model.calls == []  # the approved item, not the model's words
