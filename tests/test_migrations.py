from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from appliance.db import (
    MigrationError,
    current_revision,
    head_revision,
    make_engine,
    schema_differences,
    upgrade_to_head,
)
from appliance.pgserver import server_url


@pytest.fixture
def empty_database(pg_server: Any) -> Any:
    name = f"empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.get_uri("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = make_engine(server_url(pg_server, name))
    yield engine
    engine.dispose()
    with psycopg.connect(pg_server.get_uri("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_upgrade_to_head_builds_an_empty_database_with_pgvector(empty_database: Any) -> None:
    assert current_revision(empty_database) is None
    upgrade_to_head(empty_database)
    assert current_revision(empty_database) == head_revision()
    with empty_database.connect() as conn:
        version = conn.execute(
            text("SELECT extversion FROM pg_extension WHERE extname='vector'")
        ).scalar()
        distance = conn.execute(text("SELECT '[1,0]'::vector <-> '[0,0]'::vector")).scalar()
    assert version is not None
    assert distance == 1.0


def test_models_and_migrations_agree(empty_database: Any) -> None:
    """The equivalent of `alembic check`: autogenerate finds nothing to add."""
    upgrade_to_head(empty_database)
    assert schema_differences(empty_database) == []


def test_upgrade_is_idempotent_and_downgrade_reverses_it(empty_database: Any) -> None:
    from alembic import command

    from appliance.db import alembic_config

    upgrade_to_head(empty_database)
    upgrade_to_head(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    with empty_database.connect() as conn:
        tables = (
            conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))
            .scalars()
            .all()
        )
    assert set(tables) <= {"alembic_version"}
    upgrade_to_head(empty_database)
    assert current_revision(empty_database) == head_revision()


def test_a_database_migrated_by_a_newer_release_is_refused_in_one_line(
    empty_database: Any,
) -> None:
    upgrade_to_head(empty_database)
    with empty_database.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    with pytest.raises(MigrationError) as refused:
        upgrade_to_head(empty_database)
    message = str(refused.value)
    assert "f00dfeedbeef" in message
    assert "newer release" in message
    assert "\n" not in message
