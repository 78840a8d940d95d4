"""`appliance restore ARCHIVE`: the configured database and the recordings from an archive,
then every erasure in the journal applied again.

What is all-or-nothing and what is re-runnable:
  * Nothing is touched until the whole archive has been hashed against its manifest, the key
    store holds every KEK the archive's patient keys need, and the schema is one this code
    knows.
  * The database is replaced in ONE transaction (see dbload.py): old tables dropped, dump
    loaded, committed only if all of it loaded. A failure leaves the old database as it was.
  * Recordings are unpacked into `<data_dir>/.restore-files` first and swapped in with two
    renames after the database has committed.
  * Then migrations (to this code's head), grants for the app role, and the erasure replay
    run as separate steps. From the database step to the end of the replay a marker file
    `<data_dir>/.restore-in-progress` exists (removed again if the database step fails); if
    the command is interrupted while it exists, run it again with the same archive: every
    step starts from a clean state or is idempotent.

Why every journal entry is replayed, not only those after the backup's time: erasure is
idempotent (an already-erased patient is simply not found), the journal is small, and
comparing timestamps would trust two clocks (the backup host's and the erasing host's) and
race an erasure that ran while the backup was being written. Replaying all is simpler and
cannot miss one.

Stop the appliance's services before restoring; the database step gives up after a short lock
timeout instead of waiting on a running process.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from appliance.backup.archive import DUMP, check_members, read_manifest
from appliance.backup.checks import count_differences, table_counts
from appliance.backup.dbload import load_dump
from appliance.backup.journal import read_erasures
from appliance.backup.pgtools import BackupError, tools_for
from appliance.instance import grant_app_role
from appliance.settings import Settings

MARKER = ".restore-in-progress"
STAGING = ".restore-files"
PREVIOUS = ".files-before-restore"


@dataclass(frozen=True)
class RestoreResult:
    archive: Path
    created_at: str
    tables: int
    rows: int
    files: int
    revision: str | None
    erasures_replayed: int
    erasures_already_applied: int
    patients_without_key: int
    seconds: float


def restore_pending(settings: Settings) -> bool:
    """True while a restore has replaced the database but not finished (re-run it)."""
    return (settings.data_dir / MARKER).is_file()


def restore_archive(settings: Settings, archive: Path, *, yes: bool) -> RestoreResult:
    from appliance.crypto.service import keystore_for
    from appliance.db import open_database, upgrade_to_head
    from appliance.instance import require_initialised

    started = time.monotonic()
    require_initialised(settings)
    manifest = read_manifest(archive)
    _check_revision_known(manifest.get("alembic_revision"))
    store = keystore_for(settings)
    missing = sorted(set(manifest.get("keys", {}).get("kek_ids", [])) - set(store.keks()))
    if missing:
        raise BackupError(
            f"the archive's patient keys are wrapped by {', '.join(missing)}, which is not in "
            f"{settings.keys_dir}; restore the key directory from its own backup first"
        )
    data_dir = settings.data_dir
    with open_database(settings, admin=True) as database:
        users, patients = _people(database.engine)
        if (users or patients) and not yes:
            raise BackupError(
                f"the database holds data ({users} users, {patients} patients) and a restore "
                "replaces all of it; repeat with --yes"
            )
        staging = data_dir / STAGING
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        try:
            _load(archive, database.engine, staging, data_dir)
        except BaseException:  # nothing changed: leave nothing behind
            shutil.rmtree(staging, ignore_errors=True)
            (data_dir / MARKER).unlink(missing_ok=True)
            raise
        with database.engine.connect() as conn:
            differences = count_differences(manifest["database"]["tables"], table_counts(conn))
        if differences:  # cannot happen with a verified dump; say so loudly if it does
            raise BackupError(f"restored row counts differ from the manifest: {differences[0]}")
        upgrade_to_head(database.engine)
        grant_app_role(settings, database.engine)
        _swap_files(settings.files_dir, staging, data_dir / PREVIOUS)
        replayed, already = _replay_erasures(settings, database.engine)
        revision = _revision(database.engine)
        without_key = _patients_without_key(database.engine, set(store.patient_ids()))
        counts = manifest["database"]["tables"]
        result = RestoreResult(
            archive=archive,
            created_at=str(manifest.get("created_at")),
            tables=len(counts),
            rows=sum(counts.values()),
            files=int(manifest.get("files", {}).get("count", 0)),
            revision=revision,
            erasures_replayed=replayed,
            erasures_already_applied=already,
            patients_without_key=without_key,
            seconds=round(time.monotonic() - started, 2),
        )
        _audit(database.engine, result)
    (data_dir / MARKER).unlink(missing_ok=True)
    return result


def _load(archive: Path, engine: Engine, staging: Path, data_dir: Path) -> None:
    """Hash every member while unpacking the dump and the recordings, then load the dump."""
    with tempfile.TemporaryDirectory(prefix=".restore-", dir=data_dir) as work:
        dump = Path(work) / DUMP
        check_members(archive, {DUMP: dump}, files_to=staging)
        (data_dir / MARKER).write_text(
            json.dumps({"archive": archive.name, "started_at": datetime.now(UTC).isoformat()})
        )
        major = _server_major(engine)
        engine.dispose()  # our pooled connections must hold nothing the drops need
        url = engine.url.render_as_string(hide_password=False)
        load_dump(tools_for(major), dump, url, replace=True)


def _check_revision_known(revision: Any) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from appliance.db import alembic_config

    if not isinstance(revision, str):
        raise BackupError("the archive's manifest names no schema revision")
    try:
        found = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        raise BackupError(
            f"the archive's schema revision {revision} is newer than this appliance knows; "
            "upgrade the appliance first"
        )


def _people(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        users = conn.execute(text("SELECT count(*) FROM users")).scalar_one()
        patients = conn.execute(text("SELECT count(*) FROM patients")).scalar_one()
    return int(users), int(patients)


def _server_major(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _revision(engine: Engine) -> str | None:
    from appliance.db import current_revision

    return current_revision(engine)


def _swap_files(files_dir: Path, staging: Path, previous: Path) -> None:
    """Put the archive's recordings in place of the current ones (two renames)."""
    shutil.rmtree(previous, ignore_errors=True)
    if files_dir.exists():
        files_dir.rename(previous)
    staging.rename(files_dir)
    shutil.rmtree(previous, ignore_errors=True)


def _replay_erasures(settings: Settings, engine: Engine) -> tuple[int, int]:
    """Apply every journal entry again with the erasure service; one transaction each."""
    from sqlmodel import Session

    from appliance.audit.service import cli_actor
    from appliance.clinic.erasure import erase_patient
    from appliance.crypto.service import keystore_for
    from appliance.errors import NotFound

    store, actor = keystore_for(settings), cli_actor()
    replayed = already = 0
    for entry in read_erasures(settings.erasure_journal_path):
        with Session(engine, expire_on_commit=False) as session:
            try:
                erase_patient(
                    session, store, actor, settings.files_dir, entry.patient_id, journal=False
                )
            except NotFound:
                already += 1
                continue
            session.commit()
            replayed += 1
    return replayed, already


def _patients_without_key(engine: Engine, keyed: set[uuid.UUID]) -> int:
    with engine.connect() as conn:
        ids = {uuid.UUID(str(row[0])) for row in conn.execute(text("SELECT id FROM patients"))}
    return len(ids - keyed)


def _audit(engine: Engine, result: RestoreResult) -> None:
    from sqlmodel import Session

    from appliance.audit.service import AuditEntry, cli_actor, record

    with Session(engine) as session:
        record(
            session,
            cli_actor(),
            AuditEntry(
                "backup.restore",
                object_type="backup",
                object_id=result.archive.name,
                details={
                    "created_at": result.created_at,
                    "tables": result.tables,
                    "rows": result.rows,
                    "files": result.files,
                    "erasures_replayed": result.erasures_replayed,
                    "patients_without_key": result.patients_without_key,
                },
            ),
        )
        session.commit()
