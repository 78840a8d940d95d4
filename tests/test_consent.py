"""The consent ledger: immutable rows, current state from the latest, enforced in SQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from appliance.audit.service import Actor
from appliance.clinic.models import Patient
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.consent import service as consent
from appliance.consent.models import ConsentMethod, ConsentStatus, Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import FileContext, decrypt_file
from appliance.settings import Settings
from tests.conftest import CLINIC_IT, run_cli

GRANTED, REVOKED = ConsentStatus.granted, ConsentStatus.revoked


def grant(session: Session, patient: PatientPublic, *purposes: Purpose) -> None:
    consent.change(session, CLINIC_IT, patient.id, list(purposes), GRANTED, ConsentMethod.paper)
    session.commit()


def test_the_latest_row_decides_and_nothing_is_overwritten(
    session: Session, bob: PatientPublic
) -> None:
    assert not consent.is_granted(session, bob.id, Purpose.recording)
    grant(session, bob, Purpose.recording, Purpose.transcription)
    assert consent.is_granted(session, bob.id, Purpose.recording)
    consent.change(
        session, CLINIC_IT, bob.id, [Purpose.recording], REVOKED, ConsentMethod.in_person
    )
    session.commit()
    assert not consent.is_granted(session, bob.id, Purpose.recording)
    assert consent.is_granted(session, bob.id, Purpose.transcription)
    history = consent.history(session, bob.id)
    assert [(h.purpose, h.status) for h in history] == [
        ("recording", "granted"),
        ("transcription", "granted"),
        ("recording", "revoked"),
    ]
    states = {s.purpose: s.status for s in consent.current(session, bob.id)}
    assert states == {
        Purpose.recording: "revoked",
        Purpose.transcription: "granted",
        Purpose.ai_analysis: "none",
        Purpose.patient_chat: "none",
    }


def test_one_patients_consent_never_counts_for_another(
    session: Session, bob: PatientPublic, charlie: PatientPublic
) -> None:
    grant(session, bob, Purpose.patient_chat)
    assert not consent.is_granted(session, charlie.id, Purpose.patient_chat)


def test_the_clause_filters_rows_in_sql(
    session: Session, bob: PatientPublic, charlie: PatientPublic
) -> None:
    """How later queries (retrieval, job runs) enforce consent at the moment of use."""
    grant(session, charlie, Purpose.patient_chat)
    allowed = (
        session.execute(
            select(Patient.id).where(consent.granted_clause(Patient.id, Purpose.patient_chat))
        )
        .scalars()
        .all()
    )
    assert allowed == [charlie.id]


def test_ledger_rows_cannot_be_updated_by_anyone(
    settings: Settings, admin_url: str, session: Session, bob: PatientPublic
) -> None:
    grant(session, bob, Purpose.recording)
    for url, message in (
        (settings.external_database_url(), "permission denied"),
        (admin_url, "immutable"),
    ):
        engine = create_engine(url or "")
        with engine.connect() as conn, pytest.raises(DBAPIError, match=message):
            conn.execute(text("UPDATE consent_events SET status = 'revoked'"))
        engine.dispose()


def test_every_change_is_audited_without_phi(session: Session, bob: PatientPublic) -> None:
    grant(session, bob, Purpose.recording)
    row = session.execute(
        text("SELECT action, details::text FROM audit_events ORDER BY id DESC LIMIT 1")
    ).one()
    assert row.action == "consent.grant"
    assert json.loads(row.details) == {
        "purposes": ["recording"],
        "method": "paper",
        "evidence": False,
    }


def test_paper_evidence_is_stored_encrypted_with_the_patients_key(
    session: Session,
    store: KeyStore,
    settings: Settings,
    bob: PatientPublic,
    alice: UserPublic,
    tmp_path: Path,
) -> None:
    scan = tmp_path / "signed-form.pdf"
    scan.write_bytes(b"%PDF-1.7 Bob Brennan consents to recording")
    rows = consent.change(
        session,
        Actor(role="therapist", user_id=alice.id),  # evidence rows name who recorded it
        bob.id,
        [Purpose.recording],
        GRANTED,
        ConsentMethod.paper,
        evidence=scan,
        store=store,
        files_root=settings.files_dir,
    )
    session.commit()
    stored = list((settings.files_dir / str(bob.id) / "consent").glob("*.enc"))
    assert len(stored) == 1
    assert b"Bob Brennan" not in stored[0].read_bytes()
    assert rows[0].evidence_sha256 is not None
    context = FileContext("consent", uuid.UUID(stored[0].stem), bob.id)
    plain = b"".join(decrypt_file(patient_cipher(store, bob.id).dek, stored[0], context))
    assert plain == scan.read_bytes()


def test_consent_from_the_command_line(settings: Settings, bob: PatientPublic) -> None:
    env = {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
    }
    granted = run_cli(
        "consent",
        "grant",
        "--patient",
        str(bob.id),
        "--purpose",
        "recording,transcription",
        "--by",
        "alice@clinic.example",
        "--json",
        env=env,
    )
    assert granted.returncode == 0, granted.stderr
    assert [r["purpose"] for r in json.loads(granted.stdout)] == ["recording", "transcription"]
    revoked = run_cli(
        "consent",
        "revoke",
        "--patient",
        str(bob.id),
        "--purpose",
        "recording",
        "--by",
        "alice@clinic.example",
        env=env,
    )
    assert revoked.returncode == 0, revoked.stderr
    bad = run_cli(
        "consent",
        "grant",
        "--patient",
        str(bob.id),
        "--purpose",
        "telepathy",
        "--by",
        "alice@clinic.example",
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("Error: ")
    assert "purposes are recording" in bad.stderr
