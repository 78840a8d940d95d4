"""Fixtures of the playbook tests: a database of their own on the tests' server (owner and app
roles, pgvector made by the superuser as the postgres role would) and the CI-mode variables."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from appliance.pgserver import server_url
from tests.deploy.ansible_run import (
    PlaybookDatabase,
    Playground,
    ci_variables,
    write_inventory,
)


@pytest.fixture(scope="module")
def test_database(pg_server: Any) -> Iterator[PlaybookDatabase]:
    suffix = uuid.uuid4().hex[:8]
    name, owner, app = f"ans_{suffix}", f"ans_owner_{suffix}", f"ans_app_{suffix}"
    uri = pg_server.get_uri("postgres")
    with psycopg.connect(uri, autocommit=True) as conn:
        for role in (owner, app):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(f"secret-{role}")
                )
            )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    database_uri = pg_server.get_uri(name)
    with psycopg.connect(database_uri, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")  # what the postgres role does as the superuser
    socket_dir = str(make_url(server_url(pg_server, name)).query["host"])
    yield PlaybookDatabase(name, owner, app, socket_dir, database_uri)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        for role in (owner, app):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def playground(
    tmp_path_factory: pytest.TempPathFactory, test_database: PlaybookDatabase
) -> Iterator[Playground]:
    root = tmp_path_factory.mktemp("ansible")
    inventory = write_inventory(root / "inventory.ini")
    variables = ci_variables(root / "root", root / "bundle", test_database)
    yield Playground(root, inventory, root / "home", variables, test_database)
    shutil.rmtree(root, ignore_errors=True)
