"""Database access: one sync SQLModel/psycopg 3 engine per process, and Alembic migrations.

Web and workers use the same session type. The embedded server is started here when the
settings name no external database; production passes a plain URL to the system PostgreSQL.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, SQLModel

from appliance.paths import migrations_dir
from appliance.pgserver import (
    SUPERUSER,
    DatabaseUnavailable,
    embedded_server,
    ensure_database,
    server_url,
)
from appliance.settings import Settings

# Every module that defines tables. Alembic and `tables_metadata` import exactly these.
TABLE_MODULES = (
    "appliance.clinic.models",
    "appliance.audit.models",
    "appliance.auth.models",
    "appliance.consent.models",
    "appliance.recordings.models",
    "appliance.jobs.models",
    "appliance.pipeline.models",
    "appliance.retrieval.models",
    "appliance.chat.models",
    "appliance.reports.models",
    "appliance.messages.models",
)


def tables_metadata() -> Any:
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return SQLModel.metadata


@dataclass(frozen=True)
class Database:
    engine: Engine
    embedded: bool

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)


def make_engine(url: str) -> Engine:
    # pool_pre_ping: a restarted PostgreSQL must not surface as an error on the next request.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


@contextmanager
def open_database(
    settings: Settings, *, create: bool = False, admin: bool = False
) -> Iterator[Database]:
    """Connect to the appliance database, starting the embedded server if that is configured.

    The appliance connects as its app role; `admin=True` connects as the owner (migrations,
    grants). `create=True` (used by `appliance init`, with admin) initialises the embedded
    cluster and creates the database; otherwise a missing embedded cluster is an error, never
    silently made anew.
    """
    with ExitStack() as stack:
        if settings.uses_embedded_database:
            if not create and not (settings.pgdata_dir / "PG_VERSION").is_file():
                raise DatabaseUnavailable(
                    f"no database in {settings.data_dir}; run: appliance init "
                    f"--data-dir {settings.data_dir}"
                )
            server = stack.enter_context(embedded_server(settings.pgdata_dir))
            if create:
                ensure_database(server, settings.database.name)
            user = SUPERUSER if admin else settings.database.app_role
            url = server_url(server, settings.database.name, user)
        else:
            url = settings.external_database_url(admin=admin) or ""
        engine = make_engine(url)
        stack.callback(engine.dispose)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(
                f"cannot reach the database: {_first_line(getattr(exc, 'orig', None) or exc)}"
            ) from None
        yield Database(engine=engine, embedded=settings.uses_embedded_database)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# Migrations ---------------------------------------------------------------------------------


def alembic_config(engine: Engine | None = None) -> Any:
    """Alembic's config, built in code: the appliance has no alembic.ini to drift."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


class MigrationError(ValueError):
    """The database cannot be brought to this release's schema; the message is one line."""


def upgrade_to_head(engine: Engine) -> None:
    """Migrate to this code's newest revision. A database at a revision this code does not
    know (made by a newer release) is refused in one line rather than with alembic's trace."""
    from alembic import command
    from alembic.util import CommandError

    try:
        command.upgrade(alembic_config(engine), "head")
    except CommandError as exc:
        raise MigrationError(
            f"cannot migrate the database: {str(exc).splitlines()[0]} "
            "(was it migrated by a newer release?)"
        ) from None


@functools.cache
def head_revision() -> str | None:
    """The newest migration shipped with this code (fixed for the life of the process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_differences(engine: Engine) -> list[Any]:
    """What `alembic check` would report: differences between the tables and the database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_object}
        )
        return list(compare_metadata(context, tables_metadata()))


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave out objects the appliance does not own (Alembic's own version table)."""
    return not (type_ == "table" and name == "alembic_version")
