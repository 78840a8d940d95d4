"""Retrieval against the real database: chunk and embed stages (fake speech and a hashed
bag-of-words embedder), and search limited to one patient, released sessions and consent.

bob and charlie are both alice's patients with deliberately similar sessions; charlie's has a
canary phrase that no search of bob's may ever return."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, text
from sqlmodel import Session, col, select

from appliance.audit.models import AuditEvent
from appliance.audit.service import Actor
from appliance.clinic.erasure import erase_patient
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs.models import Job
from appliance.pipeline import transcripts
from appliance.retrieval import facts, index, lexical
from appliance.retrieval.models import (
    ChunkEmbedding,
    EmbeddingGeneration,
    FactKind,
    TranscriptChunk,
)
from appliance.retrieval.search import SearchResult
from appliance.settings import Settings
from tests.conftest import CLINIC_IT, run_cli
from tests.retrieval_fixtures import (
    CANARY,
    SLEEP,
    Clinic,
    record_practice,
)
from tests.speech_fakes import FakeEmbedder, FakeSpeech, scripted


@pytest.fixture
def speech() -> FakeSpeech:
    return FakeSpeech()


@pytest.fixture
def clinic(
    session: Session, settings: Settings, store: KeyStore, database: Database, speech: FakeSpeech
) -> Clinic:
    return Clinic(session, settings, store, database, speech)


@pytest.fixture
def practice(clinic: Clinic, alice: UserPublic, bob: PatientPublic, charlie: PatientPublic) -> Any:
    """bob: a sleep session last week and a walks session in October; charlie: a similar
    sleep session with the canary, yesterday. All released, all consented."""
    return record_practice(clinic, alice, bob, charlie)


def sessions_of(result: SearchResult) -> list[Any]:
    return [hit.session_id for hit in result.hits]


def test_a_released_session_is_chunked_sealed_embedded_and_found_by_its_patient(
    clinic: Clinic, practice: Any, session: Session, bob: PatientPublic
) -> None:
    chunk = session.exec(
        select(TranscriptChunk).where(TranscriptChunk.session_id == practice["sleep"].id)
    ).one()
    assert b"midnight" not in chunk.body_enc  # sealed with bob's key
    assert chunk.start_seconds == 0.0
    assert chunk.end_seconds > 1.5
    vector = session.exec(select(ChunkEmbedding).where(ChunkEmbedding.chunk_id == chunk.id)).one()
    assert (vector.model_id, vector.dimension, vector.patient_id) == ("fake-embedder", 64, bob.id)

    result = clinic.ask(bob, "How many times did I fall asleep after midnight?")
    assert sessions_of(result)[0] == practice["sleep"].id
    best = result.hits[0]
    assert best.session_date == date(2026, 11, 12)
    assert "midnight" in best.excerpt
    assert best.kind == "passage"
    # Turns keep their speaker's role (guessed by talk time here: no voiceprint enrolled).
    assert best.text.split(": ", 1)[1].startswith("How did the sleep diary go")
    assert {line.split(":")[0] for line in best.text.splitlines()} == {"Therapist", "Patient"}


def test_another_patients_question_never_returns_the_canary_even_asked_verbatim(
    clinic: Clinic, practice: Any, session: Session, bob: PatientPublic, charlie: PatientPublic
) -> None:
    canary_chunk = session.exec(
        select(TranscriptChunk.id).where(TranscriptChunk.session_id == practice["charlie"].id)
    ).one()
    for question in (
        CANARY,
        f"What did I say about {CANARY}?",
        "What did I dream about yesterday?",
        "How did the sleep diary go this week?",
        "lighthouse Marrowby violet",
    ):
        result = clinic.ask(bob, question)
        assert canary_chunk not in [hit.id for hit in result.hits]
        assert canary_chunk not in result.candidates
        assert practice["charlie"].id not in sessions_of(result)
        assert all(CANARY not in hit.text for hit in result.hits)
    # charlie finds it.
    assert clinic.ask(charlie, CANARY).hits[0].id == canary_chunk


def test_revoking_patient_chat_removes_passages_from_results_at_once(
    clinic: Clinic, practice: Any, bob: PatientPublic
) -> None:
    assert clinic.ask(bob, "sleep diary").hits
    clinic.consent(bob, Purpose.patient_chat, revoke=True)
    assert clinic.ask(bob, "sleep diary").hits == []
    clinic.consent(bob, Purpose.patient_chat)
    assert clinic.ask(bob, "sleep diary").hits


def test_an_unreleased_session_is_never_searched(
    clinic: Clinic, practice: Any, alice: UserPublic, bob: PatientPublic, session: Session
) -> None:
    hidden = clinic.recorded(
        bob,
        alice,
        date(2026, 11, 19),
        scripted(("SPEAKER_00", "We talked about the pottery class."), ("SPEAKER_01", "Yes.")),
        release=False,
    )
    assert session.exec(select(TranscriptChunk).where(TranscriptChunk.session_id == hidden.id))
    result = clinic.ask(bob, "What did we say about the pottery class?")
    assert hidden.id not in sessions_of(result)
    assert hidden.id not in sessions_of(result)
    assert all("pottery" not in hit.text for hit in result.hits)


def test_a_clinical_only_passage_is_never_returned(
    clinic: Clinic, practice: Any, bob: PatientPublic, session: Session
) -> None:
    session.execute(
        text("UPDATE chunks SET patient_visible = false WHERE session_id = :s"),
        {"s": practice["walks"].id},
    )
    session.commit()
    assert practice["walks"].id not in sessions_of(clinic.ask(bob, "my brother Tomasz"))


def test_without_patient_chat_consent_no_vectors_are_made_and_granting_it_resumes_indexing(
    clinic: Clinic, alice: UserPublic, bob: PatientPublic, session: Session
) -> None:
    clinic.consent(bob, Purpose.recording, Purpose.transcription)
    row = clinic.recorded(bob, alice, date(2026, 11, 12), SLEEP)
    embed = session.exec(select(Job).where(Job.stage == "embed")).one()
    assert (embed.state, embed.last_error) == ("cancelled", "consent for patient_chat is not given")
    assert session.exec(select(func.count()).select_from(ChunkEmbedding)).one() == 0
    assert clinic.speech.embedders["all-minilm-l6-v2"].seen == []

    clinic.consent(bob, Purpose.patient_chat)  # resumes the job
    clinic.run()
    session.expire_all()
    assert session.get(Job, embed.id).state == "succeeded"  # type: ignore[union-attr]
    assert sessions_of(clinic.ask(bob, "asleep after midnight")) == [row.id]


def test_time_expressions_limit_the_search_to_the_sessions_they_mean(
    clinic: Clinic, practice: Any, bob: PatientPublic
) -> None:
    # "walk" appears only in October's session, but last week's is the only one searched.
    last_week = clinic.ask(bob, "What did we say about walks last week?")
    assert set(sessions_of(last_week)) == {practice["sleep"].id}
    assert last_week.time_filter.dates is not None
    assert set(sessions_of(clinic.ask(bob, "What did I say in October?"))) == {practice["walks"].id}
    assert sessions_of(clinic.ask(bob, "In the first session, who did I walk with?")) == [
        practice["walks"].id
    ]
    assert clinic.ask(bob, "What did we discuss yesterday?").hits == []  # charlie's day


def test_approved_homework_facts_come_before_passages_for_homework_questions(
    clinic: Clinic, practice: Any, bob: PatientPublic, alice: UserPublic, session: Session
) -> None:
    actor = Actor(role="therapist", user_id=alice.id)
    facts.add(
        session,
        clinic.store,
        actor,
        practice["walks"],
        FactKind.homework,
        "Walk three mornings a week",
        start=1.3,
        end=1.99,
        frequency="three mornings a week",
        approved=True,
    )
    facts.add(
        session,
        clinic.store,
        actor,
        practice["sleep"],
        FactKind.homework,
        "An unapproved draft",
        start=0.0,
        end=1.0,
    )
    session.commit()
    result = clinic.ask(bob, "What homework did I get?")
    assert result.hits[0].kind == "fact"
    assert result.hits[0].text == "Walk three mornings a week."
    assert result.hits[0].session_id == practice["walks"].id
    assert [h.kind for h in result.hits[1:]] == ["passage"] * (len(result.hits) - 1)
    assert all(hit.text != "An unapproved draft" for hit in result.hits)
    # Not a homework question: no facts.
    assert all(h.kind == "passage" for h in clinic.ask(bob, "my brother Tomasz").hits)


def test_a_new_embedding_model_is_built_in_the_background_and_replaces_the_old_at_once(
    clinic: Clinic, practice: Any, bob: PatientPublic, session: Session, settings: Settings
) -> None:
    new = FakeEmbedder("fake-embedder-2", dimension=32)
    clinic.speech.embedders["better-model"] = new
    changed = settings.model_copy(
        update={"retrieval": settings.retrieval.model_copy(update={"embedder": "better-model"})}
    )
    assert index.sync(session, changed, clinic.speech.embedder)
    states = dict(
        session.exec(select(EmbeddingGeneration.model_id, EmbeddingGeneration.state)).all()
    )
    assert states == {"fake-embedder": "active", "fake-embedder-2": "building"}
    queued = session.exec(select(Job.state).where(Job.stage == "embed")).all()
    assert set(queued) == {"queued"}
    # Searches keep using the old vectors meanwhile.
    assert clinic.ask(bob, "asleep after midnight").model_id == "fake-embedder"

    clinic.settings = changed
    clinic.run()
    session.expire_all()
    states = dict(
        session.exec(select(EmbeddingGeneration.model_id, EmbeddingGeneration.state)).all()
    )
    assert states == {"fake-embedder": "retired", "fake-embedder-2": "active"}
    models = set(session.exec(select(ChunkEmbedding.model_id)).all())
    assert models == {"fake-embedder-2"}  # the old vectors are gone
    result = clinic.ask(bob, "asleep after midnight")
    assert result.model_id == "fake-embedder-2"
    assert sessions_of(result)[0] == practice["sleep"].id


def test_relabelling_a_speaker_rechunks_the_recording_with_the_new_roles(
    clinic: Clinic, practice: Any, bob: PatientPublic, alice: UserPublic, session: Session
) -> None:
    actor = Actor(role="therapist", user_id=alice.id)
    before = clinic.ask(bob, "asleep after midnight").hits[0]
    assert "Other: I kept it every night" not in before.text
    transcripts.relabel(session, clinic.store, actor, practice["sleep"], "SPEAKER_01", "other")
    session.commit()
    clinic.run()
    after = clinic.ask(bob, "asleep after midnight").hits[0]
    assert "Other: I kept it every night" in after.text
    assert after.id != before.id


def test_erasing_a_patient_deletes_their_chunks_vectors_and_facts(
    clinic: Clinic, practice: Any, bob: PatientPublic, session: Session, settings: Settings
) -> None:
    erase_patient(session, clinic.store, CLINIC_IT, settings.files_dir, bob.id)
    session.commit()
    for table in (TranscriptChunk, ChunkEmbedding):
        owners = session.exec(select(col(table.patient_id))).all()  # type: ignore[attr-defined]
        assert bob.id not in owners
        assert owners


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The environment `appliance` needs to find this test's appliance."""
    return {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
    }


def test_appliance_search_prints_results_as_json_with_the_chat_filters_and_is_audited(
    practice: Any, bob: PatientPublic, env: dict[str, str], session: Session, adam: UserPublic
) -> None:
    # The CLI uses the configured embedder (the real one); only lexical matches are checked.
    result = run_cli(
        "search", "--patient", str(bob.id), "--today", "2026-11-21", "--json", "--by",
        adam.email, "my brother Tomasz", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    first = found["results"][0]
    assert set(first) >= {"session_id", "session_date", "start", "end", "score", "excerpt"}
    assert first["session_id"] == str(practice["walks"].id)
    assert first["session_date"] == "2026-10-08"
    assert "Tomasz" in first["excerpt"]
    assert all(r["session_id"] != str(practice["charlie"].id) for r in found["results"])
    session.expire_all()
    audit = session.exec(select(AuditEvent).where(AuditEvent.action == "retrieval.search")).one()
    assert audit.patient_id == bob.id
    assert "Tomasz" not in json.dumps(audit.details)


def test_appliance_search_refuses_a_therapist_an_unknown_patient_and_an_empty_query(
    practice: Any, bob: PatientPublic, env: dict[str, str], alice: UserPublic
) -> None:
    patient = str(bob.id)
    for args in (
        ("--patient", patient, "--by", alice.email, "walks"),
        ("--patient", "00000000-0000-0000-0000-000000000000", "walks"),
        ("--patient", patient, "  "),
        ("--patient", "not-a-uuid", "walks"),
    ):
        result = run_cli("search", *args, env=env)
        assert result.returncode != 0
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_fusion_rewards_passages_both_rankings_agree_on() -> None:
    assert lexical.fuse([[0, 1, 2], [2, 0]], k=60)[0][0] == 0
    assert [item for item, _ in lexical.fuse([[5, 6], []])] == [5, 6]
    assert lexical.fuse([]) == []


def test_bm25_finds_names_and_numbers_and_ignores_passages_without_them() -> None:
    passages = [
        "Therapist: How was the week?",
        "Patient: I called my brother Tomasz on Sunday.",
        "Patient: I slept four hours, maybe 4 at most.",
    ]
    assert lexical.bm25_ranking("what did I say about Tomasz?", passages) == [1]
    assert lexical.bm25_ranking("was it 4 hours", passages)[0] == 2
    assert lexical.bm25_ranking("what did we say?", passages) == []  # stopwords only


def test_the_excerpt_is_the_matching_turn_and_the_reply_to_it() -> None:
    text = "Therapist: Hello.\nTherapist: We agreed on homework.\nPatient: I walked daily.\nX: y."
    assert lexical.best_line("what homework", text) == (
        "Therapist: We agreed on homework. Patient: I walked daily."
    )
    assert lexical.best_line("homework", "A: " + "word " * 200, limit=50).endswith(" …")
