"""`appliance init` on the embedded PostgreSQL: idempotent, side by side, and all-or-nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def listening_tcp_ports(pgdata: Path) -> list[int]:
    pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    connections = psutil.Process(pid).net_connections(kind="inet")
    return [c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN]


def test_init_twice_is_harmless(tmp_path: Path) -> None:
    data_dir = tmp_path / "clinic"
    first = run_cli("init", "--data-dir", str(data_dir), "--json")
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created["created"] is True
    assert created["database"] == "embedded"
    kek_before = (data_dir / "keys" / "kek.key").read_bytes()

    second = run_cli("init", "--data-dir", str(data_dir), "--json")
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["created"] is False
    assert again["id"] == created["id"]
    assert again["kek_id"] == created["kek_id"]
    assert (data_dir / "keys" / "kek.key").read_bytes() == kek_before
    assert (data_dir / "keys" / "kek.key").stat().st_mode & 0o077 == 0


def test_two_appliances_run_side_by_side_on_sockets_only(tmp_path: Path) -> None:
    """Each CLI call starts and stops its own server; `web` keeps one running. Here two are
    started in this process and held at once, and neither listens on TCP."""
    from appliance.pgserver import embedded_server

    one, two = tmp_path / "one", tmp_path / "two"
    for data_dir in (one, two):
        assert run_cli("init", "--data-dir", str(data_dir)).returncode == 0
    with embedded_server(one / "pgdata") as first, embedded_server(two / "pgdata") as second:
        assert first.get_uri() != second.get_uri()
        assert listening_tcp_ports(one / "pgdata") == []
        assert listening_tcp_ports(two / "pgdata") == []
    users_one = run_cli(
        "users", "add", "--role", "admin", "--email", "a@one.example", "--data-dir", str(one)
    )
    assert users_one.returncode == 0, users_one.stderr
    listed_two = run_cli("users", "list", "--json", "--data-dir", str(two))
    assert json.loads(listed_two.stdout) == []


def a_file(path: Path) -> Path:
    path.write_text("a file")
    return path


def under_a_missing_parent(path: Path) -> Path:
    return path / "missing-parent" / "dir"


def a_folder_with_someone_elses_files(path: Path) -> Path:
    path.mkdir()
    (path / "holiday.jpg").write_text("x")
    return path


@pytest.mark.parametrize(
    ("make_target", "fragment"),
    [
        (a_file, "is not a directory"),
        (under_a_missing_parent, "does not exist"),
        (a_folder_with_someone_elses_files, "not an appliance data directory"),
    ],
)
def test_a_wrong_data_dir_is_refused_in_one_line(
    tmp_path: Path, make_target: Callable[[Path], Path], fragment: str
) -> None:
    target = make_target(tmp_path / "target")
    result = run_cli("init", "--data-dir", str(target))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert fragment in result.stderr
    if make_target is a_folder_with_someone_elses_files:
        assert sorted(p.name for p in target.iterdir()) == ["holiday.jpg"]


def test_a_failed_init_leaves_nothing_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "clinic"
    result = run_cli(
        "init",
        "--data-dir",
        str(data_dir),
        env={"APPLIANCE_DATABASE__URL": "postgresql+psycopg://nobody@/none?host=/nonexistent"},
    )
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert not data_dir.exists()


def test_init_refuses_to_rekey_a_database_whose_key_file_was_lost(tmp_path: Path) -> None:
    data_dir = tmp_path / "clinic"
    assert run_cli("init", "--data-dir", str(data_dir)).returncode == 0
    assert (
        run_cli(
            "users",
            "add",
            "--role",
            "therapist",
            "--email",
            "t@c.example",
            "--data-dir",
            str(data_dir),
        ).returncode
        == 0
    )
    assert (
        run_cli(
            "patients",
            "add",
            "--name",
            "Bob",
            "--therapist",
            "t@c.example",
            "--data-dir",
            str(data_dir),
        ).returncode
        == 0
    )
    (data_dir / "keys" / "kek.key").unlink()
    result = run_cli("init", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "restore the key file" in result.stderr
    assert not (data_dir / "keys" / "kek.key").exists()


def test_the_demo_runs_end_to_end_to_a_cited_answer_on_the_portal_and_runs_again(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "demo"
    first = run_cli("demo", "--data-dir", str(data_dir))
    assert first.returncode == 0, first.stderr
    assert "/health/ready -> ready" in first.stdout
    assert "enrolled from" in first.stdout
    assert "s, " in first.stdout.split("Taking a recorded session in")[1]  # its duration
    queued = "jobs queued: probe, transcribe, diarize, attribute, chunk, embed, report"
    assert queued in first.stdout
    for stage in ("probe", "transcribe", "diarize", "attribute", "chunk", "embed"):
        assert f"{stage}: succeeded after 1 attempt(s)" in first.stdout
    assert "LUFS integrated" in first.stdout
    assert "-120.0 LUFS" not in first.stdout  # speech has a real loudness
    assert "is the therapist (" in first.stdout
    assert "by voiceprint" in first.stdout
    assert "therapist: Welcome back." in first.stdout
    assert "checkpoints verify" in first.stdout
    found = first.stdout.split("passage(s) found, ranked by sentence-transformers/")[1]
    best = found.splitlines()[1].strip()
    assert best.startswith("1. session of ")
    assert "walk" in best or "breathing" in best  # the homework, with its minute
    reported = first.stdout.split("7. `appliance llm` starts")[1].split("8. The patient asks")[0]
    assert "drafted by qwen2.5-0.5b-instruct-q4@sha256:" in reported
    assert "homework: " in reported  # the walks and the breathing, linked to their minute
    assert "Suicidal ideation: not assessed." in reported  # never "denies"
    assert "approved version 1 and released the session" in reported
    answered = first.stdout.split("9. The patient signs in to the portal")[1]
    answered = answered.split("10. Exporting")[0]
    assert "(refused" not in answered
    assert "[1] session of " in answered  # every sentence of the answer is cited
    assert "KB of WAV" in answered  # the cited minute, played as the portal plays it
    assert "sign in as robin@demo.clinic.invalid with the password " in first.stdout
    assert "the patient's question got a cited answer" in first.stdout
    again = run_cli("demo", "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr
    assert "already ingested earlier" in again.stdout
    assert "already enrolled" in again.stdout
    assert "probe: succeeded after 1 attempt(s)" in again.stdout  # not run a second time
