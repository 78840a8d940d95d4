"""Loading a dump into a database in one transaction: all of it, or nothing.

`pg_restore` writes the dump as SQL and `psql` runs it inside a transaction that this module
opens and commits itself, only after pg_restore has exited cleanly: a dump that breaks off
half way, or a statement that fails, rolls everything back and the database keeps what it had.

When the target already holds an appliance (`replace=True`), the same transaction first drops
every table, view, sequence, function and type in schema `public` that does not belong to an
extension. PostgreSQL's DDL is transactional, so the old tables are only gone if the new ones
commit. Extensions stay (creating pgvector needs a superuser, which the owner role is not);
the dump's `CREATE EXTENSION IF NOT EXISTS` is then a no-op, and its `COMMENT ON EXTENSION`
(which only the extension's owner may run) is left out.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from appliance.backup.pgtools import BackupError, Tools, first_error, libpq_connection

LOCK_TIMEOUT = "15s"  # a running appliance holding locks makes the restore fail, not hang

DROP_APPLIANCE_OBJECTS = r"""
DO $drop$
DECLARE
  statement text;
BEGIN
  FOREACH statement IN ARRAY coalesce((
    SELECT array_agg(format('DROP %s IF EXISTS public.%I CASCADE',
             CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                            WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE'
                            ELSE 'TABLE' END, c.relname) ORDER BY c.relkind = 'S', c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')), '{}')
  LOOP EXECUTE statement; END LOOP;
  FOREACH statement IN ARRAY coalesce((
    SELECT array_agg(format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')), '{}')
  LOOP EXECUTE statement; END LOOP;
  FOREACH statement IN ARRAY coalesce((
    SELECT array_agg(format('DROP TYPE IF EXISTS public.%I CASCADE', t.typname))
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname = 'public'
      AND (t.typtype IN ('e', 'd', 'r', 'm')
           OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class r
                                            WHERE r.oid = t.typrelid AND r.relkind = 'c')))
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                      AND d.objid = t.oid AND d.deptype = 'e')), '{}')
  LOOP EXECUTE statement; END LOOP;
END
$drop$;
"""

_COMMENT_ON_EXTENSION = re.compile(r"^\d+; \d+ \d+ COMMENT - EXTENSION ")


def load_dump(tools: Tools, dump: Path, sqlalchemy_url: str, *, replace: bool) -> None:
    """Load `dump` into the database at `sqlalchemy_url` in a single transaction."""
    connection = libpq_connection(sqlalchemy_url)
    with tempfile.TemporaryDirectory(prefix="appliance-load-") as work:
        listing = Path(work) / "toc.list"
        toc = subprocess.run(
            [tools.path("pg_restore"), "--list", str(dump)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if toc.returncode != 0:
            raise BackupError(f"pg_restore cannot read the dump: {first_error(toc.stderr)}")
        kept = [line for line in toc.stdout.splitlines() if not _COMMENT_ON_EXTENSION.match(line)]
        listing.write_text("\n".join(kept) + "\n")
        restore_err = Path(work) / "pg_restore.err"
        psql_err = Path(work) / "psql.err"
        with restore_err.open("wb") as r_err, psql_err.open("wb") as p_err:
            restore = subprocess.Popen(
                [
                    tools.path("pg_restore"),
                    "--no-owner",
                    "--no-privileges",
                    "--use-list",
                    str(listing),
                    "--file=-",
                    str(dump),
                ],
                stdout=subprocess.PIPE,
                stderr=r_err,
            )
            psql = subprocess.Popen(
                [
                    tools.path("psql"),
                    "--no-psqlrc",
                    "--quiet",
                    "--set=ON_ERROR_STOP=1",
                    "--file=-",
                    f"--dbname={connection.url}",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=p_err,
                env=connection.env,
            )
            _feed(restore, psql, replace)
        if psql.returncode != 0:
            raise BackupError(
                f"loading the dump failed: {first_error(psql_err.read_bytes())}; "
                "nothing was changed"
            )
        if restore.returncode != 0:
            raise BackupError(
                f"pg_restore failed: {first_error(restore_err.read_bytes())}; nothing was changed"
            )


def _feed(restore: subprocess.Popen[bytes], psql: subprocess.Popen[bytes], replace: bool) -> None:
    """Stream BEGIN, the drops, the dump, and COMMIT only if pg_restore finished cleanly."""
    assert restore.stdout is not None
    assert psql.stdin is not None
    prefix = f"BEGIN;\nSET LOCAL lock_timeout = '{LOCK_TIMEOUT}';\n"
    if replace:
        prefix += DROP_APPLIANCE_OBJECTS
    try:
        psql.stdin.write(prefix.encode())
        shutil.copyfileobj(restore.stdout, psql.stdin, 1024 * 1024)
        restore.wait()
        if restore.returncode == 0:
            psql.stdin.write(b"\nCOMMIT;\n")
        # else: end of input with the transaction open; the server rolls it back.
    except BrokenPipeError:  # psql stopped at an error (ON_ERROR_STOP): rolled back
        restore.kill()
    finally:
        with contextlib.suppress(BrokenPipeError):
            psql.stdin.close()
        restore.wait()
        psql.wait()
