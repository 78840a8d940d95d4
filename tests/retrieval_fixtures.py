"""The retrieval tests' clinic: alice's patients bob and charlie with deliberately similar
sessions (charlie's has a canary phrase), recorded through the real stages with fake speech and
a hashed bag-of-words embedder, and released. Shared by the retrieval and chat tests."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlmodel import Session

from appliance.audit.service import Actor
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.keystore import KeyStore
from appliance.db import Database
from appliance.jobs import runner
from appliance.recordings import service as sessions
from appliance.recordings.models import TherapySession
from appliance.recordings.schemas import SessionCreate
from appliance.retrieval.search import SearchResult, search
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import CLINIC_IT, add_recording
from tests.speech_fakes import scripted

TODAY = date(2026, 11, 21)  # a Saturday; "last week" is 9-15 November
CANARY = "the violet lighthouse at Marrowby"

SLEEP = scripted(
    ("SPEAKER_00", "How did the sleep diary go this week?"),
    ("SPEAKER_01", "I kept it every night and I fell asleep after midnight four times."),
    ("SPEAKER_00", "For homework, please get up and read if you are awake after twenty minutes."),
)
WALKS = scripted(
    ("SPEAKER_00", "Tell me about the walks."),
    ("SPEAKER_01", "I walked by the river with my brother Tomasz on Sunday."),
    ("SPEAKER_00", "Keep walking three mornings a week until we meet again."),
)
CHARLIES = scripted(
    ("SPEAKER_00", "How did the sleep diary go this week?"),
    ("SPEAKER_01", f"I dreamt of {CANARY} and woke at three."),
    ("SPEAKER_00", "For homework, please write the dream down when you wake."),
)


class Clinic:
    """alice's practice: sessions recorded, run through the pipeline and released."""

    def __init__(
        self, session: Session, settings: Settings, store: KeyStore, db: Database, speech: Any
    ) -> None:
        self.session, self.settings, self.store, self.db, self.speech = (
            session,
            settings,
            store,
            db,
            speech,
        )

    def consent(self, patient: PatientPublic, *purposes: Purpose, revoke: bool = False) -> None:
        status = ConsentStatus.revoked if revoke else ConsentStatus.granted
        consent.change(
            self.session, CLINIC_IT, patient.id, list(purposes), status, ConsentMethod.paper
        )
        self.session.commit()

    def recorded(
        self,
        patient: PatientPublic,
        alice: UserPublic,
        day: date,
        script: Any,
        release: bool = True,
    ) -> TherapySession:
        made = sessions.add_session(
            self.session,
            CLINIC_IT,
            SessionCreate(patient_id=patient.id, session_date=day, therapist_id=alice.id),
        )
        self.session.commit()
        row = self.session.get(TherapySession, made.id)
        assert row is not None
        self.speech.say(script)
        add_recording(self.session, self.settings, self.store, row, make_audio("wav", 2.0))
        self.run()
        if release:
            sessions.release(self.session, Actor(role="therapist", user_id=alice.id), row)
            self.session.commit()
        return row

    def run(self) -> None:
        runner.drain(self.db, self.settings, self.store, "test-worker", self.speech.pipeline())

    def ask(self, patient: PatientPublic, question: str) -> SearchResult:
        self.session.expire_all()
        return search(
            self.session,
            self.store,
            self.settings,
            patient.id,
            question,
            today=TODAY,
            embedder=self.speech.embedder,
        )


ALL = (Purpose.recording, Purpose.transcription, Purpose.patient_chat)


def record_practice(
    clinic: Clinic, alice: UserPublic, bob: PatientPublic, charlie: PatientPublic
) -> dict[str, TherapySession]:
    """bob: a sleep session last week and a walks session in October; charlie: a similar
    sleep session with the canary, yesterday. All released, all consented."""
    clinic.consent(bob, *ALL)
    clinic.consent(charlie, *ALL)
    return {
        "sleep": clinic.recorded(bob, alice, date(2026, 11, 12), SLEEP),
        "walks": clinic.recorded(bob, alice, date(2026, 10, 8), WALKS),
        "charlie": clinic.recorded(charlie, alice, date(2026, 11, 20), CHARLIES),
    }
