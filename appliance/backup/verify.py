"""`appliance backup verify ARCHIVE`: prove an archive restores, without touching the appliance.

Steps, each a reason to fail: every member's sha256 against the manifest (none missing, none
extra); the dump restored into a scratch embedded PostgreSQL in a temporary folder; every
table's row count equal to the manifest's; the audit hash chain and its signed checkpoints
verified on the restored copy with the code of `appliance audit verify`. The scratch server
and its folder are removed afterwards, pass or fail.

The checkpoint signatures are checked with the public key recorded in the manifest (the
private key never leaves `keys/`). That proves the archive is intact and self-consistent; it
does not prove who wrote it, since whoever could rewrite an archive could rewrite its manifest.

The scratch cluster lives under $TMPDIR (set TMPDIR to a roomy disk for large databases).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from appliance.backup.archive import DUMP, check_members
from appliance.backup.checks import count_differences, table_counts, verify_audit
from appliance.backup.dbload import load_dump
from appliance.backup.pgtools import BackupError, tools_for

SCRATCH_DATABASE = "verify"


@dataclass(frozen=True)
class VerifyResult:
    archive: Path
    created_at: str
    members: int
    tables: int
    rows: int
    audit_entries: int
    audit_checkpoints: int
    seconds: float


def verify_archive(archive: Path) -> VerifyResult:
    from appliance.db import make_engine
    from appliance.pgserver import embedded_server, ensure_database, server_url

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="appliance-verify-") as scratch:
        dump = Path(scratch) / DUMP
        manifest = check_members(archive, {DUMP: dump})
        expected: dict[str, int] = manifest["database"]["tables"]
        with embedded_server(Path(scratch) / "pgdata") as server:
            ensure_database(server, SCRATCH_DATABASE)
            url = server_url(server, SCRATCH_DATABASE)
            engine = make_engine(url)
            try:
                with engine.connect() as conn:
                    major = int(conn.execute(text("SHOW server_version_num")).scalar_one())
                load_dump(tools_for(major // 10000), dump, url, replace=False)
                with engine.connect() as conn:
                    differences = count_differences(expected, table_counts(conn))
                if differences:
                    raise BackupError(
                        f"restored row counts differ from the manifest ({len(differences)} "
                        f"table(s)): {differences[0]}"
                    )
                verdict = verify_audit(engine, manifest.get("audit", {}).get("public_keys", {}))
            finally:
                engine.dispose()
    if not verdict.ok:
        raise BackupError(f"the restored audit log fails verification: {verdict.reason}")
    return VerifyResult(
        archive=archive,
        created_at=str(manifest.get("created_at")),
        members=len(manifest.get("members", {})),
        tables=len(expected),
        rows=sum(expected.values()),
        audit_entries=verdict.entries,
        audit_checkpoints=verdict.checkpoints,
        seconds=round(time.monotonic() - started, 2),
    )
