"""The restore drill, end to end with the real CLI as clinic IT would run it after losing the
server: back up, erase a patient AFTER the backup, lose the database and the data directory
(the keys and the erasure journal survive in the key safe, as the README prescribes), set up
the new machine, restore, and prove that the restored appliance is the lost one: the archive
and the audit chain verify, bob's recordings and transcripts read back byte for byte through a
real `appliance web`, and charlie, erased after the backup, stays erased. Before the disaster,
the monthly `appliance backup drill` rehearses the same restore beside production and fails
when the key directory lacks a key. Plus the mistakes an operator meets in a drill: a restore
over live data without --yes, and a corrupted archive. One test, because each step needs the
state the previous one left (and every real process costs seconds of CI time)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, make_url, text
from sqlmodel import Session

from appliance.audit import service as audit
from appliance.backup.checks import table_counts
from appliance.backup.restore import MARKER, STAGING
from appliance.clinic.schemas import PatientPublic, UserPublic
from appliance.crypto.keystore import KeyMissing, KeyStore
from appliance.crypto.service import keystore_for, patient_cipher
from appliance.crypto.streams import DecryptingReader, FileContext
from appliance.db import Database
from appliance.retrieval.search import search
from appliance.settings import Settings
from tests.conftest import PASSWORD, run_cli, serve
from tests.retrieval_fixtures import TODAY, Clinic, record_practice
from tests.speech_fakes import FakeSpeech

pytestmark = pytest.mark.slow

AUDIT_TABLES = {"audit_events", "audit_checkpoints"}


@dataclass(frozen=True)
class Practice:
    """alice's practice after the pipeline ran: bob (two released sessions) and charlie (one,
    with a canary phrase), both with portal accounts; and the archive `appliance backup` made."""

    bob: uuid.UUID
    charlie: uuid.UUID
    sessions: dict[str, uuid.UUID]
    archive: Path


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
        "APPLIANCE_DATABASE__ADMIN_URL": settings.database.admin_url or "",
        "APPLIANCE_MODELS_DIR": str(settings.resolved_models_dir),
    }


def cli(settings: Settings, *args: str) -> Any:
    """One `appliance ... --json` command that must succeed; its JSON output."""
    done = run_cli(*args, "--json", env=cli_env(settings))
    assert done.returncode == 0, f"appliance {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def counts(settings: Settings) -> dict[str, int]:
    engine = create_engine(settings.database.admin_url or "")
    with engine.connect() as conn:
        found = table_counts(conn)
    engine.dispose()
    return found


def recordings_sha256(settings: Settings, patient: uuid.UUID) -> dict[uuid.UUID, str]:
    """sha256 of every recording of the patient, decrypted with the key store on disk."""
    store = keystore_for(settings)
    engine = create_engine(settings.database.admin_url or "")
    with Session(engine) as session:
        rows = session.execute(
            text("SELECT id FROM recordings WHERE patient_id = :p"), {"p": patient}
        ).all()
    engine.dispose()
    found = {}
    for (recording,) in rows:
        path = settings.files_dir / str(patient) / "recordings" / f"{recording}.rec"
        context = FileContext("recording", recording, patient)
        with DecryptingReader(patient_cipher(store, patient).dek, path, context) as reader:
            found[recording] = hashlib.sha256(bytes(reader.read())).hexdigest()
    return found


def rows_naming(settings: Settings, patient: uuid.UUID) -> dict[str, int]:
    """Rows in any table with a patient_id column (or the patients table) naming the patient."""
    engine = create_engine(settings.database.admin_url or "")
    with engine.connect() as conn:
        tables = [
            name
            for (name,) in conn.execute(
                text(
                    "SELECT table_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name = 'patient_id' "
                    "AND table_name NOT IN ('audit_events')"
                )
            )
        ]
        found = {
            name: conn.execute(
                text(f'SELECT count(*) FROM "{name}" WHERE patient_id = :p'),  # noqa: S608
                {"p": patient},
            ).scalar_one()
            for name in tables
        }
        found["patients"] = conn.execute(
            text("SELECT count(*) FROM patients WHERE id = :p"), {"p": patient}
        ).scalar_one()
    engine.dispose()
    return {name: n for name, n in found.items() if n}


@pytest.fixture
def practice(
    session: Session,
    settings: Settings,
    store: KeyStore,
    database: Database,
    alice: UserPublic,
    bob: PatientPublic,
    charlie: PatientPublic,
    people: dict[str, UserPublic],
    tmp_path: Path,
) -> Practice:
    clinic = Clinic(session, settings, store, database, FakeSpeech())
    made = record_practice(clinic, alice, bob, charlie)
    audit.checkpoint(session, audit.load_signing_key(settings.audit_key_path))
    session.commit()
    session.close()  # the drill drops the database: hold no connection open
    database.engine.dispose()
    backups = tmp_path / "backups"
    backups.mkdir()
    archive = Path(cli(settings, "backup", "--to", str(backups))["path"])
    return Practice(bob.id, charlie.id, {k: v.id for k, v in made.items()}, archive)


def lose_the_server(settings: Settings, key_safe: Path) -> None:
    """The operator's key safe copy (README), then the disaster: database and data dir gone."""
    with tarfile.open(key_safe, "w") as tar:
        tar.add(settings.keys_dir, "keys")
        tar.add(settings.erasure_journal_path, "erasures.jsonl")
    shutil.rmtree(settings.data_dir)
    url = make_url(settings.database.admin_url or "")
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        name = sql.Identifier(url.database or "")
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))  # the playbook's empty one


def new_machine(settings: Settings, key_safe: Path) -> None:
    """README: put keys/ and erasures.jsonl back, then `appliance init` finds the KEK."""
    settings.data_dir.mkdir(mode=0o700)
    with tarfile.open(key_safe) as tar:
        tar.extractall(settings.data_dir, filter="data")
    cli(settings, "init", "--data-dir", str(settings.data_dir))


def corrupted(archive: Path) -> Path:
    """A copy with one byte of the database dump flipped (bit rot on the backup disk)."""
    copy = archive.with_name("corrupted.tar")
    with tarfile.open(archive) as src, tarfile.open(copy, "w") as dst:
        for member in src:
            handle = src.extractfile(member)
            data = handle.read() if handle else b""
            if member.name == "database.dump":
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            dst.addfile(member, io.BytesIO(data))
    return copy


def search_restored(settings: Settings, patient: uuid.UUID, question: str) -> Any:
    """The patient's chat retrieval over the restored database, with the embedder that made
    its vectors; the best hit."""
    engine = create_engine(settings.database.admin_url or "")
    with Session(engine) as session:
        result = search(
            session,
            keystore_for(settings),
            settings,
            patient,
            question,
            today=TODAY,
            embedder=FakeSpeech().embedder,
        )
    engine.dispose()
    assert result.hits, "nothing found in the restored index"
    return result.hits[0]


def portal_login(client: httpx.Client, email: str) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})


def test_after_losing_the_server_a_restore_brings_bob_back_whole_and_charlie_stays_erased(
    settings: Settings, practice: Practice, tmp_path: Path
) -> None:
    bob, charlie = practice.bob, practice.charlie
    # A drill's first mistake: restoring over the live appliance. Refused without --yes.
    before = counts(settings)
    refused = run_cli("restore", str(practice.archive), env=cli_env(settings))
    assert refused.returncode == 1
    assert re.search(r"holds data \(\d+ users, 2 patients\).*repeat with --yes", refused.stderr)
    assert counts(settings) == before
    assert not (settings.data_dir / MARKER).exists()
    assert not (settings.data_dir / STAGING).exists()

    # After the backup, charlie is erased; then the server is lost.
    erased = cli(settings, "patients", "erase", "--patient", str(charlie), "--yes")
    assert erased["key_destroyed"]
    bobs_audio = recordings_sha256(settings, bob)
    assert len(bobs_audio) == 2
    lost = counts(settings)

    # The monthly drill: the same restore beside production, which it only reads.
    drill = cli(settings, "backup", "drill", str(practice.archive))
    assert drill["ok"]
    assert (drill["erasures_replayed"], drill["recordings_decrypted"]) == (1, 2)
    assert counts(settings) == lost
    assert recordings_sha256(settings, bob) == bobs_audio
    assert not list(settings.data_dir.glob(".drill-*"))
    # What the drill is for: a key directory that lacks a patient's key (an old key safe
    # copy) fails it, loudly, before the day it is needed.
    bobs_key = settings.keys_dir / "patients" / f"{bob}.json"
    aside = bobs_key.rename(tmp_path / "bob-key.json")
    failed = run_cli("backup", "drill", str(practice.archive), env=cli_env(settings))
    aside.rename(bobs_key)
    assert failed.returncode == 1
    assert "1 restored patient(s) have no data key" in failed.stderr
    assert not list(settings.data_dir.glob(".drill-*"))

    key_safe = tmp_path / "key-safe.tar"
    lose_the_server(settings, key_safe)
    new_machine(settings, key_safe)
    empty = counts(settings)
    assert empty["patients"] == 0

    # The next one: a corrupted archive. Refused before touching anything.
    refused = run_cli("restore", str(corrupted(practice.archive)), "--yes", env=cli_env(settings))
    assert refused.returncode == 1
    assert "database.dump" in refused.stderr
    assert "sha256" in refused.stderr
    assert counts(settings) == empty
    assert not (settings.data_dir / MARKER).exists()
    assert not (settings.data_dir / STAGING).exists()

    restored = cli(settings, "restore", str(practice.archive), "--yes")
    assert (restored["erasures_replayed"], restored["patients_without_key"]) == (1, 0)

    # The journal's erasure was re-applied, and audited, before the restore itself.
    engine = create_engine(settings.database.admin_url or "")
    with engine.connect() as conn:
        tail = conn.execute(
            text("SELECT action, object_id FROM audit_events ORDER BY id DESC LIMIT 2")
        ).all()
    engine.dispose()
    assert [tuple(row) for row in tail][::-1] == [
        ("patient.erase", str(charlie)),
        ("backup.restore", practice.archive.name),
    ]

    # The archive verifies, and so does the restored audit chain (exported, checked offline).
    assert cli(settings, "backup", "verify", str(practice.archive))["ok"]
    bundle = tmp_path / "audit.json"
    cli(settings, "audit", "export", "--out", str(bundle))
    verdict = run_cli("audit", "verify", str(bundle), env=cli_env(settings))
    assert verdict.returncode == 0, verdict.stderr

    # Table by table, the restored database is the one that was lost (audit rows aside).
    now = counts(settings)
    assert {t: n for t, n in now.items() if t not in AUDIT_TABLES} == {
        t: n for t, n in lost.items() if t not in AUDIT_TABLES
    }

    # bob: every recording decrypts to the same bytes; charlie: no rows, no files, no key.
    assert recordings_sha256(settings, bob) == bobs_audio
    assert rows_naming(settings, charlie) == {}
    assert rows_naming(settings, bob)["recordings"] == 2
    assert not (settings.files_dir / str(charlie)).exists()
    with pytest.raises(KeyMissing):
        keystore_for(settings).get(charlie)

    # Search over the restored index (vectors and encrypted passages) finds bob's passage.
    hit = search_restored(settings, bob, "Who did I walk by the river with?")
    assert hit.session_id == practice.sessions["walks"]
    assert "Tomasz" in hit.excerpt

    with serve(settings, tmp_path / "web.log") as base:
        with httpx.Client(base_url=base, timeout=60) as client:
            assert portal_login(client, "charlie@portal.example").status_code == 401
        with httpx.Client(base_url=base, timeout=60) as client:
            signed_in = portal_login(client, "bob@portal.example")
            assert signed_in.status_code == 200, signed_in.text
            csrf = signed_in.json()["csrf_token"]
            assert client.get("/portal").status_code == 200
            download = client.post("/portal/my-data", data={"csrf_token": csrf})
            assert download.status_code == 200, download.text[:500]
            with zipfile.ZipFile(io.BytesIO(download.content)) as bundle_zip:
                transcripts = [n for n in bundle_zip.namelist() if n.startswith("transcripts/")]
                text_of_all = "".join(bundle_zip.read(n).decode() for n in transcripts)
            assert len(transcripts) == 2
            assert "my brother Tomasz" in text_of_all
            assert "lighthouse" not in text_of_all
            window = {"start": hit.start, "end": hit.end}
            clip = client.get(f"/portal/listen/{hit.session_id}", params=window)
            assert clip.status_code == 200
            assert clip.headers["content-type"] == "audio/wav"
            foreign = practice.sessions["charlie"]
            assert client.get(f"/portal/listen/{foreign}", params=window).status_code == 404
