"""`appliance backup drill ARCHIVE`: the whole restore, rehearsed on the side, monthly.

`backup verify` proves an archive is intact and its dump loads. It cannot prove that the
archive and the key safe TOGETHER bring the appliance back: that the key directory still
unwraps every restored patient's data key, that every recording decrypts, and that erased
patients stay erased. Only a real restore shows that, and nobody wants to find out during the
disaster. So the drill runs `appliance restore`'s own code into a scratch appliance:

  * a scratch data directory inside the data directory (same protected disk as the keys; no
    key copy ever lands in /tmp), holding a COPY of `keys/` and `erasures.jsonl`, and its own
    embedded PostgreSQL;
  * `appliance init` there, then the restore with its erasure replay;
  * checks: no patient without a data key, every journaled patient gone (rows and files),
    every recording decrypts and authenticates with its patient's key, the audit chain and
    checkpoints verify;
  * the scratch directory removed afterwards, pass or fail.

Production is only read: the archive, `keys/` and the journal. Its database is never opened.
The drill needs free space for one more copy of the recordings and the database.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from appliance.backup.pgtools import BackupError
from appliance.settings import Settings

SCRATCH_PREFIX = ".drill-"


@dataclass(frozen=True)
class DrillResult:
    archive: Path
    created_at: str
    tables: int
    rows: int
    recordings_decrypted: int
    erasures_replayed: int
    erasures_already_applied: int
    audit_entries: int
    audit_checkpoints: int
    seconds: float


def drill_archive(settings: Settings, archive: Path) -> DrillResult:
    """Restore ARCHIVE into a scratch appliance beside this one and check it end to end."""
    from appliance.instance import require_initialised
    from appliance.pgserver import embedded_server

    started = time.monotonic()
    require_initialised(settings)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=settings.data_dir))
    try:
        rehearsal = _scratch_settings(settings, scratch)
        # One server for every step (init, restore, checks join it); stopped when they end.
        with embedded_server(rehearsal.pgdata_dir):
            return _rehearse(rehearsal, archive, started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _scratch_settings(settings: Settings, scratch: Path) -> Settings:
    """This appliance's settings, moved to `scratch` with an embedded database there. A copy
    of settings, never a reload: APPLIANCE_DATABASE__URL would point it at production."""
    shutil.copytree(settings.keys_dir, scratch / "keys", symlinks=False)
    if settings.erasure_journal_path.is_file():
        shutil.copy2(settings.erasure_journal_path, scratch / settings.erasure_journal_path.name)
    database = settings.database.model_copy(
        update={"url": None, "url_file": None, "admin_url": None, "admin_url_file": None}
    )
    return settings.model_copy(update={"data_dir": scratch, "database": database})


def _rehearse(settings: Settings, archive: Path, started: float) -> DrillResult:
    from appliance.backup.checks import audit_public_keys, verify_audit
    from appliance.backup.journal import read_erasures
    from appliance.backup.restore import restore_archive
    from appliance.db import open_database
    from appliance.instance import initialise

    initialise(settings)
    restored = restore_archive(settings, archive, yes=True)
    if restored.patients_without_key:
        raise BackupError(
            f"{restored.patients_without_key} restored patient(s) have no data key in "
            f"{settings.keys_dir.name}/: the key safe copy is older than the archive"
        )
    with open_database(settings, admin=True) as database:
        _check_erased(
            database.engine,
            settings,
            [e.patient_id for e in read_erasures(settings.erasure_journal_path)],
        )
        decrypted = _check_recordings(database.engine, settings)
        verdict = verify_audit(database.engine, audit_public_keys(settings.audit_key_path))
    if not verdict.ok:
        raise BackupError(f"the restored audit log fails verification: {verdict.reason}")
    return DrillResult(
        archive=archive,
        created_at=restored.created_at,
        tables=restored.tables,
        rows=restored.rows,
        recordings_decrypted=decrypted,
        erasures_replayed=restored.erasures_replayed,
        erasures_already_applied=restored.erasures_already_applied,
        audit_entries=verdict.entries,
        audit_checkpoints=verdict.checkpoints,
        seconds=round(time.monotonic() - started, 2),
    )


def _check_erased(engine: Engine, settings: Settings, erased: list[uuid.UUID]) -> None:
    """Every journaled patient: no patient row, no row naming them, no files folder."""
    with engine.connect() as conn:
        tables = [
            str(name)
            for (name,) in conn.execute(
                text(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = "
                    "'public' AND column_name = 'patient_id' AND table_name <> 'audit_events'"
                )
            )
        ]
        for patient in erased:
            left = conn.execute(
                text("SELECT count(*) FROM patients WHERE id = :p"), {"p": patient}
            ).scalar_one()
            for table in tables:
                quoted = '"' + table.replace('"', '""') + '"'
                left += conn.execute(
                    text(f"SELECT count(*) FROM public.{quoted} WHERE patient_id = :p"),  # noqa: S608
                    {"p": patient},
                ).scalar_one()
            if left or (settings.files_dir / str(patient)).exists():
                raise BackupError(f"erased patient {patient} is back after the restore")


def _check_recordings(engine: Engine, settings: Settings) -> int:
    """Decrypt (and so authenticate) every recording with its patient's key; the count."""
    from appliance.crypto.envelope import DecryptionFailed
    from appliance.crypto.keystore import KeyMissing
    from appliance.crypto.service import keystore_for, patient_cipher
    from appliance.crypto.streams import FileContext, decrypt_file

    store = keystore_for(settings)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, patient_id FROM recordings ORDER BY id")).all()
    for recording, patient in rows:
        path = settings.files_dir / str(patient) / "recordings" / f"{recording}.rec"
        try:
            dek = patient_cipher(store, patient).dek
            for _ in decrypt_file(dek, path, FileContext("recording", recording, patient)):
                pass
        except (DecryptionFailed, KeyMissing, OSError) as failed:
            raise BackupError(
                f"recording {recording} does not decrypt after the restore "
                f"({type(failed).__name__})"
            ) from None
    return len(rows)
