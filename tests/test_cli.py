"""The admin CLI as scripts drive it: separate processes, exit codes, one-line errors, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.settings import Settings
from tests.conftest import run_cli


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
    }


def assert_one_line_error(result: object, *fragments: str) -> None:
    assert result.returncode != 0  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_users_add_prints_the_new_user_as_json(env: dict[str, str]) -> None:
    result = run_cli(
        "users",
        "add",
        "--role",
        "therapist",
        "--email",
        "Alice@Clinic.Example",
        "--name",
        "Dr. Alice Moreno",
        "--json",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    user = json.loads(result.stdout)
    assert user["email"] == "alice@clinic.example"
    assert user["role"] == "therapist"
    assert len(user["id"]) == 36


def test_a_password_is_read_from_stdin_and_never_echoed(env: dict[str, str]) -> None:
    result = run_cli(
        "users",
        "add",
        "--role",
        "admin",
        "--email",
        "adam@clinic.example",
        "--password-stdin",
        env=env,
        stdin="correct horse battery staple\n",
    )
    assert result.returncode == 0, result.stderr
    assert "correct horse" not in result.stdout + result.stderr
    short = run_cli(
        "users",
        "add",
        "--role",
        "admin",
        "--email",
        "a2@clinic.example",
        "--password-stdin",
        env=env,
        stdin="short\n",
    )
    assert_one_line_error(short, "password")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--role", "admin", "--email", "not-an-email"], "email: Value error, not a valid e-mail"),
        (["--role", "admin", "--email", "x@y.example", "--name", ""], "name"),
    ],
)
def test_users_add_rejects_bad_input_in_one_line(
    env: dict[str, str], args: list[str], fragment: str
) -> None:
    assert_one_line_error(run_cli("users", "add", *args, env=env), fragment)


def test_an_unknown_role_is_refused_by_the_option_parser(env: dict[str, str]) -> None:
    result = run_cli("users", "add", "--role", "wizard", "--email", "w@x.example", env=env)
    assert result.returncode == 2
    assert_one_line_error(result, "'wizard' is not one of")


def test_patients_add_prints_the_id_and_keeps_the_name_out_of_the_output(
    env: dict[str, str],
) -> None:
    run_cli("users", "add", "--role", "therapist", "--email", "alice@clinic.example", env=env)
    result = run_cli(
        "patients",
        "add",
        "--name",
        "Bob Brennan",
        "--therapist",
        "alice@clinic.example",
        "--email",
        "bob@home.example",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) == 36
    as_json = run_cli(
        "patients",
        "add",
        "--name",
        "Charlie Castellanos",
        "--therapist",
        "alice@clinic.example",
        "--json",
        env=env,
    )
    payload = json.loads(as_json.stdout)
    assert set(payload) == {"id", "therapist_ids", "created_at"}
    assert "Charlie" not in as_json.stdout


def test_patients_add_needs_a_real_therapist(env: dict[str, str]) -> None:
    run_cli("users", "add", "--role", "admin", "--email", "adam@clinic.example", env=env)
    assert_one_line_error(
        run_cli("patients", "add", "--name", "X", "--therapist", "adam@clinic.example", env=env),
        "not an active therapist",
    )
    assert_one_line_error(
        run_cli("patients", "add", "--name", "X", "--therapist", "ghost@clinic.example", env=env),
        "no therapist",
    )


def test_commands_refuse_an_uninitialised_data_dir(tmp_path: Path) -> None:
    result = run_cli(
        "users",
        "add",
        "--role",
        "admin",
        "--email",
        "a@b.example",
        "--data-dir",
        str(tmp_path / "nowhere"),
    )
    assert_one_line_error(result, "not an initialised appliance", "appliance init")


def test_an_unreachable_database_is_one_clear_line(env: dict[str, str]) -> None:
    env = {**env, "APPLIANCE_DATABASE__URL": "postgresql+psycopg://nobody@/none?host=/nonexistent"}
    result = run_cli("users", "list", env=env)
    assert_one_line_error(result, "cannot reach the database")


def test_models_install_for_the_clinic_profile_says_why_it_cannot(env: dict[str, str]) -> None:
    assert_one_line_error(
        run_cli("models", "install", "--profile", "clinic", env=env), "offline bundle"
    )


def test_keys_rotate_and_patients_erase_from_the_command_line(env: dict[str, str]) -> None:
    run_cli("users", "add", "--role", "therapist", "--email", "alice@clinic.example", env=env)
    bob = run_cli(
        "patients", "add", "--name", "Bob Brennan", "--therapist", "alice@clinic.example", env=env
    ).stdout.strip()
    rotated = json.loads(run_cli("keys", "rotate", "--json", env=env).stdout)
    assert rotated["rewrapped"] == 1
    assert rotated["id"] != rotated["old_kek_id"]

    assert_one_line_error(run_cli("patients", "erase", "--patient", bob, env=env), "--yes")
    erased = json.loads(
        run_cli("patients", "erase", "--patient", bob, "--yes", "--json", env=env).stdout
    )
    assert erased == {"id": bob, "key_destroyed": True, "rows_deleted": True, "files_deleted": 0}
    assert_one_line_error(
        run_cli("patients", "erase", "--patient", bob, "--yes", env=env), "no such patient"
    )
    assert_one_line_error(run_cli("patients", "erase", "--patient", "not-a-uuid", "--yes", env=env))


def test_access_commands_link_disable_and_issue_keys(env: dict[str, str]) -> None:
    run_cli("users", "add", "--role", "therapist", "--email", "alice@clinic.example", env=env)
    run_cli("users", "add", "--role", "patient", "--email", "bob@portal.example", env=env)
    bob = run_cli(
        "patients", "add", "--name", "Bob Brennan", "--therapist", "alice@clinic.example", env=env
    ).stdout.strip()
    assert (
        run_cli(
            "patients", "link", "--patient", bob, "--user", "bob@portal.example", env=env
        ).returncode
        == 0
    )
    assert_one_line_error(
        run_cli("patients", "link", "--patient", bob, "--user", "alice@clinic.example", env=env),
        "role patient",
    )
    assert (
        run_cli(
            "users",
            "set-password",
            "--email",
            "alice@clinic.example",
            env=env,
            stdin="a long and memorable passphrase\n",
        ).returncode
        == 0
    )
    assert_one_line_error(
        run_cli("users", "set-password", "--email", "alice@clinic.example", env=env, stdin="short"),
        "12 to 1024",
    )
    key = json.loads(
        run_cli(
            "apikeys",
            "create",
            "--user",
            "alice@clinic.example",
            "--name",
            "practice system",
            "--json",
            env=env,
        ).stdout
    )
    assert key["key"].startswith("apl_")
    assert key["role"] == "therapist"
    assert_one_line_error(
        run_cli(
            "apikeys",
            "create",
            "--user",
            "alice@clinic.example",
            "--name",
            "x",
            "--role",
            "admin",
            env=env,
        ),
        "own role",
    )
    assert run_cli("apikeys", "revoke", "--id", key["id"], env=env).returncode == 0
    disabled = json.loads(
        run_cli("users", "disable", "--email", "alice@clinic.example", "--json", env=env).stdout
    )
    assert disabled["sessions_ended"] == 0


def test_sessions_add_and_release_from_the_command_line(env: dict[str, str]) -> None:
    run_cli("users", "add", "--role", "therapist", "--email", "alice@clinic.example", env=env)
    run_cli("users", "add", "--role", "therapist", "--email", "dora@clinic.example", env=env)
    bob = run_cli(
        "patients", "add", "--name", "Bob Brennan", "--therapist", "alice@clinic.example", env=env
    ).stdout.strip()
    made = run_cli(
        "sessions",
        "add",
        "--patient",
        bob,
        "--therapist",
        "alice@clinic.example",
        "--date",
        "2026-11-14",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    session_id = made.stdout.strip()
    assert_one_line_error(
        run_cli(
            "sessions",
            "add",
            "--patient",
            bob,
            "--therapist",
            "dora@clinic.example",
            "--date",
            "2026-11-14",
            env=env,
        ),
        "assigned therapists",
    )
    assert_one_line_error(
        run_cli(
            "sessions",
            "add",
            "--patient",
            bob,
            "--therapist",
            "alice@clinic.example",
            "--date",
            "14/11/2026",
            env=env,
        ),
        "--date",
    )
    assert_one_line_error(
        run_cli(
            "sessions", "release", "--session", session_id, "--by", "dora@clinic.example", env=env
        ),
        "no such session",
    )
    released = run_cli(
        "sessions",
        "release",
        "--session",
        session_id,
        "--by",
        "alice@clinic.example",
        "--json",
        env=env,
    )
    assert json.loads(released.stdout)["released"] is True


def test_bench_prints_each_figure_beside_its_library_call(tmp_path: Path) -> None:
    result = run_cli(
        "bench", "--size-mb", "2", "--runs", "1", "--json", "--data-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["rows"]}
    assert {
        "aes-gcm, in memory (library)",
        "encrypted upload write",
        "pyav decode, plain file (library)",
        "pyav decode, decrypting reader",
    } == set(rows)
    assert all(row["mib_per_s"] > 0 for row in rows.values())
    assert list(tmp_path.iterdir()) == []  # its scratch files are gone
