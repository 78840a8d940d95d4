"""Backups: a consistent archive that verifies by restoring it, tampering that is caught,
no half archives, and a restore after which an erased patient stays erased."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import Session

from appliance.audit import service as audit
from appliance.backup import dbload, latest
from appliance.backup.archive import (
    MANIFEST,
    ArchiveWriter,
    archive_name,
    archives,
    prune,
    read_manifest,
)
from appliance.backup.checks import audit_public_keys, verify_audit
from appliance.backup.create import create_backup
from appliance.backup.journal import read_erasures
from appliance.backup.pgtools import BackupError
from appliance.backup.restore import restore_archive
from appliance.backup.verify import verify_archive
from appliance.clinic.erasure import erase_patient
from appliance.clinic.models import Patient
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyMissing, KeyStore
from appliance.crypto.service import patient_cipher
from appliance.crypto.streams import DecryptingReader, FileContext
from appliance.db import make_engine
from appliance.settings import Settings
from tests.audio import make_audio
from tests.conftest import CLINIC_IT, add_recording, consented_session, run_cli


@dataclass(frozen=True)
class Clinic:
    """bob and charlie, each with one consented session and one encrypted recording."""

    bob: uuid.UUID
    charlie: uuid.UUID
    recordings: dict[uuid.UUID, tuple[uuid.UUID, bytes]]  # patient: (recording id, audio)


@pytest.fixture
def clinic(
    session: Session,
    settings: Settings,
    store: KeyStore,
    alice: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
) -> Clinic:
    recordings = {}
    for patient, seconds in ((bob, 1.0), (charlie, 1.5)):
        row = consented_session(session, patient.id, alice.id)
        audio = make_audio("wav", seconds)
        accepted = add_recording(session, settings, store, row, audio)
        recordings[patient.id] = (accepted.recording_id, audio)
    audit.checkpoint(session, audit.load_signing_key(settings.audit_key_path))
    session.commit()
    session.close()  # a restore drops tables: the test must hold no snapshot open
    return Clinic(bob.id, charlie.id, recordings)


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
        "APPLIANCE_DATABASE__ADMIN_URL": settings.database.admin_url or "",
    }


def counts(settings: Settings, *tables: str) -> dict[str, int]:
    engine = create_engine(settings.database.admin_url or "")
    with engine.connect() as conn:
        found = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}  # noqa: S608
    engine.dispose()
    return found


def decrypted(
    settings: Settings, store: KeyStore, patient: uuid.UUID, recording: uuid.UUID
) -> bytes:
    path = settings.files_dir / str(patient) / "recordings" / f"{recording}.rec"
    context = FileContext("recording", recording, patient)
    with DecryptingReader(patient_cipher(store, patient).dek, path, context) as reader:
        return bytes(reader.read())


def test_a_backup_holds_dump_recordings_and_manifest_but_no_keys_and_verifies(
    settings: Settings, clinic: Clinic, tmp_path: Path
) -> None:
    out = tmp_path / "backups"
    out.mkdir()
    made = run_cli("backup", "--to", str(out), "--json", env=cli_env(settings))
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    archive = Path(result["path"])
    assert archive.parent == out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert "Bob" not in made.stdout
    assert "Charlie" not in made.stdout

    manifest = read_manifest(archive)
    live = counts(settings, "patients", "recordings", "audit_events", "audit_checkpoints")
    live["audit_events"] -= 1  # the backup itself, audited after the dump
    assert {t: manifest["database"]["tables"][t] for t in live} == live
    assert live["patients"] == 2
    assert live["recordings"] == 2
    assert manifest["files"]["count"] == 2
    assert result["files"] == 2
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "database.dump" in names
    assert names[-1] == MANIFEST
    assert not [n for n in names if n.startswith("keys") or n.endswith(".key")]
    kek_id = json.loads(next((settings.keys_dir / "patients").glob("*.json")).read_text())["kek_id"]
    assert manifest["keys"] == {"in_archive": False, "kek_ids": [kek_id], "patient_keys": 2}

    checked = run_cli("backup", "verify", str(archive), "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"]
    assert report["tables"] == len(manifest["database"]["tables"])
    assert report["audit_checkpoints"] == 1
    assert report["audit_entries"] == live["audit_events"]


def _rewrite(archive: Path, change: Any) -> Path:
    """A copy of the archive with `change(name, data) -> data` applied to every member."""
    copy = archive.with_name("tampered.tar")
    with tarfile.open(archive) as src, tarfile.open(copy, "w") as dst:
        for member in src:
            handle = src.extractfile(member)
            data = change(member.name, handle.read() if handle else b"")
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return copy


@pytest.fixture
def archive(settings: Settings, clinic: Clinic, tmp_path: Path) -> Path:
    return create_backup(settings, tmp_path).path


def test_a_changed_recording_fails_verification_with_a_one_line_reason(archive: Path) -> None:
    def flip(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name.endswith(".rec") else data

    failed = run_cli("backup", "verify", str(_rewrite(archive, flip)))
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: member files/")
    assert "does not match its sha256" in failed.stderr
    assert failed.stderr.count("\n") == 1


def test_row_counts_that_differ_from_the_manifest_fail_verification(archive: Path) -> None:
    def lie(name: str, data: bytes) -> bytes:
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        manifest["database"]["tables"]["patients"] += 1
        return json.dumps(manifest).encode()

    with pytest.raises(BackupError, match="patients: 2 rows, manifest says 3"):
        verify_archive(_rewrite(archive, lie))


def test_an_altered_audit_row_in_the_dump_fails_verification(
    settings: Settings, clinic: Clinic, tmp_path: Path
) -> None:
    owner = create_engine(settings.database.admin_url or "")
    with owner.begin() as conn:  # what an intruder with the owner's password could do
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(
            text(
                "UPDATE audit_events SET outcome = 'denied' "
                "WHERE id = (SELECT max(id) FROM audit_events)"
            )
        )
    owner.dispose()
    archive = create_backup(settings, tmp_path).path
    with pytest.raises(BackupError, match="audit log fails verification: position"):
        verify_archive(archive)


def test_a_backup_to_an_unusable_folder_fails_and_writes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BackupError, match="is not an existing folder"):
        create_backup(settings, blocker / "sub")
    assert blocker.read_text() == "not a folder"
    assert not settings.backup_dir.exists()


def test_a_backup_that_fails_half_way_leaves_no_partial_archive(
    settings: Settings, clinic: Clinic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: ArchiveWriter, manifest: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(ArchiveWriter, "finish", disk_full)
    with pytest.raises(BackupError, match="No space left on device"):
        create_backup(settings, out)
    assert sorted(p.name for p in out.iterdir()) == [".appliance-backup.lock"]


def test_only_the_newest_archives_are_kept_and_latest_names_the_newest(
    settings: Settings, tmp_path: Path
) -> None:
    now = datetime(2026, 11, 14, 2, 0, tzinfo=UTC)
    for days in range(4):
        (tmp_path / archive_name(now - timedelta(days=days))).write_bytes(b"x" * days)
    (tmp_path / ".appliance-backup-x.partial").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("kept")

    removed = prune(tmp_path, keep=2)

    assert [p.name for p in removed] == [archive_name(now - timedelta(days=d)) for d in (3, 2)]
    assert [a.created_at for a in archives(tmp_path)] == [now - timedelta(days=1), now]
    assert (tmp_path / "notes.txt").exists()
    configured = settings.model_copy(
        update={"backup": settings.backup.model_copy(update={"dir": tmp_path})}
    )
    newest = latest(configured)
    assert newest is not None
    assert newest.created_at == now
    assert newest.size_bytes == 0


def test_an_erasure_is_journaled_before_it_happens_with_id_and_time_only(
    settings: Settings, session: Session, store: KeyStore, bob: PatientPublic
) -> None:
    erase_patient(session, store, CLINIC_IT, settings.files_dir, bob.id)
    session.commit()
    journal = settings.erasure_journal_path
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    line = json.loads(journal.read_text())
    assert set(line) == {"patient_id", "erased_at"}
    assert line["patient_id"] == str(bob.id)
    assert [e.patient_id for e in read_erasures(journal)] == [bob.id]


def test_restore_brings_back_the_backup_but_an_erased_patient_stays_erased(
    settings: Settings, clinic: Clinic, store: KeyStore, tmp_path: Path
) -> None:
    archive = create_backup(settings, tmp_path).path
    engine = make_engine(settings.database.url or "")
    with Session(engine) as session:  # after the backup: bob erased, charlie's file lost
        erase_patient(session, store, CLINIC_IT, settings.files_dir, clinic.bob)
        session.commit()
    engine.dispose()
    charlie_recording, charlie_audio = clinic.recordings[clinic.charlie]
    (settings.files_dir / str(clinic.charlie) / "recordings" / f"{charlie_recording}.rec").unlink()

    refused = run_cli("restore", str(archive), env=cli_env(settings))
    assert refused.returncode == 1
    assert "repeat with --yes" in refused.stderr

    restored = run_cli("restore", str(archive), "--yes", "--json", env=cli_env(settings))
    assert restored.returncode == 0, restored.stderr
    report = json.loads(restored.stdout)
    assert (report["erasures_replayed"], report["patients_without_key"]) == (1, 0)

    assert counts(settings, "patients")["patients"] == 1
    engine = make_engine(settings.database.admin_url or "")
    with Session(engine) as session:
        assert session.get(Patient, clinic.bob) is None
        assert session.get(Patient, clinic.charlie) is not None
        bob_rows = session.execute(
            text("SELECT count(*) FROM recordings WHERE patient_id = :p"), {"p": clinic.bob}
        ).scalar_one()
        assert bob_rows == 0
    with pytest.raises(KeyMissing):
        store.get(clinic.bob)
    assert not (settings.files_dir / str(clinic.bob)).exists()
    assert decrypted(settings, store, clinic.charlie, charlie_recording) == charlie_audio
    verdict = verify_audit(engine, audit_public_keys(settings.audit_key_path))
    assert verdict.ok, verdict.reason
    with engine.connect() as conn:
        actions = [a for (a,) in conn.execute(text("SELECT action FROM audit_events ORDER BY id"))]
    engine.dispose()
    assert actions[-2:] == ["patient.erase", "backup.restore"]
    assert not (settings.data_dir / ".restore-in-progress").exists()
    assert not (settings.data_dir / ".restore-files").exists()


def test_a_restore_without_the_archives_kek_refuses_before_touching_anything(
    settings: Settings, clinic: Clinic, tmp_path: Path
) -> None:
    archive = create_backup(settings, tmp_path).path
    moved = tmp_path / "kek.key"
    os.replace(settings.kek_path, moved)
    with pytest.raises(BackupError, match="restore the key directory"):
        restore_archive(settings, archive, yes=True)
    assert counts(settings, "patients")["patients"] == 2


def test_a_restore_that_cannot_take_its_locks_changes_nothing(
    settings: Settings,
    clinic: Clinic,
    store: KeyStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = create_backup(settings, tmp_path).path
    monkeypatch.setattr(dbload, "LOCK_TIMEOUT", "1s")
    running = make_engine(settings.database.url or "")  # a service still reading patients
    with running.connect() as conn, conn.begin():
        conn.execute(text("SELECT count(*) FROM patients"))
        with pytest.raises(BackupError, match="lock timeout; nothing was changed"):
            restore_archive(settings, archive, yes=True)
    running.dispose()
    assert counts(settings, "patients", "recordings") == {"patients": 2, "recordings": 2}
    recording, audio = clinic.recordings[clinic.bob]
    assert decrypted(settings, store, clinic.bob, recording) == audio
    assert not (settings.data_dir / ".restore-in-progress").exists()
    assert not (settings.data_dir / ".restore-files").exists()
