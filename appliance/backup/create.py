"""`appliance backup`: one consistent archive per run, never a half-written one.

Consistency: the row counts in the manifest and pg_dump read the same snapshot (a REPEATABLE
READ transaction exports it and pg_dump is started with `--snapshot`), so verification can
demand exact counts even from a busy appliance. The recordings are copied after the dump;
a recording uploaded in between is in the archive without its row (harmless: nothing points
at it), and one erased in between is missing its file while its row is still in the dump (its
key is destroyed, and the restore's erasure replay removes the row).

Atomicity: the archive is written as `.<name>.partial` (0600) in the target folder, fsynced,
then linked to its final name; on any failure the partial file and the work folder are
removed. A lock file serialises backups into one folder (a timer run and a manual one).

The dump runs as the app role: a backup needs to read, never to own.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from appliance import __version__
from appliance.backup.archive import (
    CONFIG,
    DUMP,
    FILES,
    FORMAT,
    ArchiveWriter,
    archive_name,
    prune,
)
from appliance.backup.checks import audit_public_keys, table_counts
from appliance.backup.pgtools import BackupError, libpq_connection, run_tool, tools_for
from appliance.settings import ENV_PREFIX, INSTANCE_CONFIG_NAME, Settings

LOCK_NAME = ".appliance-backup.lock"
TEMP_PREFIX = ".appliance-backup-"


@dataclass(frozen=True)
class BackupResult:
    path: Path
    created_at: datetime
    size_bytes: int
    seconds: float
    tables: int
    rows: int
    files: int
    pruned: tuple[str, ...]


def create_backup(settings: Settings, to: Path | None = None) -> BackupResult:
    """Write one archive into `to` (default: the configured backup folder) and prune."""
    from appliance.db import open_database

    started = time.monotonic()
    target = _target_folder(settings, to)
    created_at = datetime.now(UTC).replace(microsecond=0)
    name = archive_name(created_at)
    final = target / name
    partial = target / f"{TEMP_PREFIX}{name}.partial"
    work = target / f"{TEMP_PREFIX}{name}.work"
    with _folder_lock(target), open_database(settings) as database:
        _remove_stale_temp(target)
        if final.exists():
            raise BackupError(f"{final} already exists (one backup per second at most)")
        try:
            work.mkdir(mode=0o700)
            snapshot = _dump(database.engine, work / DUMP)
            manifest = _write_archive(settings, partial, work / DUMP, created_at, snapshot)
            os.link(partial, final)  # never replaces: a finished archive is never overwritten
            _fsync_dir(target)
        except OSError as exc:
            raise BackupError(f"cannot write the backup to {target}: {exc.strerror}") from None
        finally:
            partial.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
        pruned = tuple(p.name for p in prune(target, settings.backup.keep))
        result = BackupResult(
            path=final,
            created_at=created_at,
            size_bytes=final.stat().st_size,
            seconds=round(time.monotonic() - started, 2),
            tables=len(snapshot["tables"]),
            rows=sum(snapshot["tables"].values()),
            files=manifest["files"]["count"],
            pruned=pruned,
        )
        _audit(database, result)
    return result


def _target_folder(settings: Settings, to: Path | None) -> Path:
    if to is None:
        target = settings.backup_dir
        try:
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"cannot create {target}: {exc.strerror}") from None
    else:
        target = to.expanduser().absolute()
        if not target.is_dir():
            raise BackupError(f"--to {target} is not an existing folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise BackupError(f"cannot write to {target}: permission denied")
    return target


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BackupError(f"cannot write to {folder}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup is being written to {folder}") from None
        yield
    finally:
        os.close(fd)


def _remove_stale_temp(folder: Path) -> None:
    """Leftovers of a run that was killed (we hold the lock, so no run is using them)."""
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _dump(engine: Any, out: Path) -> dict[str, Any]:
    """pg_dump and the row counts, from one exported snapshot."""
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(text("SET TRANSACTION READ ONLY"))
            snapshot_id = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            version_num = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            counts = table_counts(conn)
            tools = tools_for(version_num // 10000)
            connection = libpq_connection(engine.url.render_as_string(hide_password=False))
            run_tool(
                [
                    tools.path("pg_dump"),
                    "--format=custom",
                    "--no-password",
                    f"--snapshot={snapshot_id}",
                    f"--file={out}",
                    f"--dbname={connection.url}",
                ],
                connection,
                "pg_dump",
            )
    return {
        "server_version_num": version_num,
        "pg_dump_major": tools.major,
        "alembic_revision": revision,
        "tables": counts,
    }


def instance_config_path(settings: Settings) -> Path | None:
    """The instance file this process was configured from, as `load_settings` finds it."""
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    path = Path(explicit) if explicit else settings.data_dir / INSTANCE_CONFIG_NAME
    return path if path.is_file() else None


def _write_archive(
    settings: Settings, partial: Path, dump: Path, created_at: datetime, snapshot: dict[str, Any]
) -> dict[str, Any]:
    from appliance.crypto.service import keystore_for

    store = keystore_for(settings)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        writer = ArchiveWriter(out)
        writer.add_file(DUMP, dump)
        config = instance_config_path(settings)
        if config is not None:
            writer.add_file(CONFIG, config)
        files = writer.add_tree(FILES, settings.files_dir)
        manifest = {
            "format": FORMAT,
            "created_at": created_at.isoformat(),
            "appliance_version": __version__,
            "alembic_revision": snapshot["alembic_revision"],
            "database": {
                "server_version_num": snapshot["server_version_num"],
                "pg_dump_major": snapshot["pg_dump_major"],
                "tables": snapshot["tables"],
            },
            "files": {"count": files},
            "config": CONFIG if config is not None else None,
            "keys": {
                # Not in the archive: see appliance/backup/__init__.py. Restore checks that
                # the key store holds these KEKs before it touches anything.
                "in_archive": False,
                "kek_ids": sorted(store.wrapped_by()),
                "patient_keys": sum(1 for _ in store.patient_ids()),
            },
            "audit": {"public_keys": audit_public_keys(settings.audit_key_path)},
        }
        writer.finish(manifest)
        out.flush()
        os.fsync(out.fileno())
    return manifest


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _audit(database: Any, result: BackupResult) -> None:
    from appliance.audit.service import AuditEntry, cli_actor, record

    with database.session() as session:
        record(
            session,
            cli_actor(),
            AuditEntry(
                "backup.create",
                object_type="backup",
                object_id=result.path.name,
                details={
                    "size_bytes": result.size_bytes,
                    "tables": result.tables,
                    "rows": result.rows,
                    "files": result.files,
                    "pruned": len(result.pruned),
                },
            ),
        )
        session.commit()
