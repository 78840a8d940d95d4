"""`appliance doctor --production`: each check against the real thing it checks: a listening
socket and a closed port for egress, the real database roles (the app role, the owner, a role
granted too much), a real backup archive, the machine's own systemd (or its absence)."""

from __future__ import annotations

import json
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from appliance.db import Database, make_engine
from appliance.doctor import (
    SERVICES,
    check_backup_age,
    check_backups,
    check_configured_models,
    check_database_role,
    check_egress,
    check_gpu_for_workers,
    check_services,
    configured_models,
    under_systemd,
)
from appliance.pgserver import SUPERUSER
from appliance.settings import Settings
from tests.conftest import REPO, run_cli


def with_section(settings: Settings, section: str, **values: Any) -> Settings:
    return settings.model_copy(
        update={section: getattr(settings, section).model_copy(update=values)}
    )


# Egress ---------------------------------------------------------------------------------------


@pytest.fixture
def listening() -> Iterator[tuple[str, int]]:
    """A real TCP listener on loopback: what an open path to the internet looks like."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[:2]


@pytest.fixture
def closed_port() -> tuple[str, int]:
    """A port nothing listens on (bound, then released): what a REJECT rule looks like."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        address: tuple[str, int] = server.getsockname()[:2]
    return address


def test_an_address_that_accepts_a_connection_means_egress_is_open(
    listening: tuple[str, int], closed_port: tuple[str, int]
) -> None:
    check = check_egress([closed_port, listening], timeout=2)
    assert check.status == "fail"
    assert check.detail == f"egress is open: connected to {listening[0]}:{listening[1]}"


def test_connections_refused_everywhere_mean_egress_is_blocked(
    closed_port: tuple[str, int],
) -> None:
    check = check_egress([closed_port], timeout=2)
    assert check.status == "ok"
    assert check.detail == f"blocked ({closed_port[0]}:{closed_port[1]} ECONNREFUSED)"


def test_the_cli_tries_the_egress_targets_it_is_given_and_refuses_a_malformed_one(
    settings: Settings, listening: tuple[str, int]
) -> None:
    env = {
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE__URL": settings.database.url or "",
        "APPLIANCE_MODELS_DIR": str(REPO / "models"),
    }
    target = f"{listening[0]}:{listening[1]}"
    result = run_cli(
        "doctor", "--production", "--quick", "--egress-target", target, "--json", env=env
    )
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["egress"]["status"] == "fail"
    assert target in checks["egress"]["detail"]
    assert checks["database role"]["status"] == "ok"
    assert checks["backup"]["status"] == "fail"  # this appliance was never backed up
    assert checks["model: whisper-tiny-en"]["status"] == "ok"
    assert "gpu for workers" in checks
    assert result.returncode == 1
    bad = run_cli("doctor", "--production", "--egress-target", "no-port", env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "Error: --egress-target 'no-port' is not HOST:PORT"


# Services -------------------------------------------------------------------------------------


def test_services_are_a_warning_where_systemd_does_not_run_the_machine() -> None:
    checks = check_services(booted=False)
    assert [(c.name, c.status) for c in checks] == [("services", "warn")]
    assert checks[0].detail.startswith("not under systemd")
    if not under_systemd():  # this machine, as it is
        assert [c.status for c in check_services()] == ["warn"]


def test_each_service_is_asked_with_systemctl_is_active(tmp_path: Path) -> None:
    """An executable that answers as `systemctl is-active` does, unit by unit, exit 3."""
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(
        '#!/bin/sh\n[ "$1" = is-active ] || exit 64\nshift\n'
        'for unit in "$@"; do case "$unit" in\n'
        "  appliance-web) echo active;; appliance-llm) echo activating;;\n"
        "  appliance-worker-gpu) echo failed;; *) echo inactive;; esac; done\nexit 3\n"
    )
    systemctl.chmod(systemctl.stat().st_mode | stat.S_IXUSR)
    checks = check_services(systemctl=str(systemctl), booted=True)
    assert [(c.name, c.status, c.detail.split(";")[0]) for c in checks] == [
        ("service: appliance-web", "ok", "active"),
        ("service: appliance-llm", "fail", "activating"),
        ("service: appliance-worker-gpu", "fail", "failed"),
        ("service: appliance-worker-cpu", "fail", "inactive"),
    ]
    assert "journalctl -u appliance-worker-gpu" in checks[2].detail
    assert tuple(c.name.removeprefix("service: ") for c in checks) == SERVICES


# GPU ------------------------------------------------------------------------------------------


def test_settings_that_need_cuda_fail_where_no_gpu_is_visible(
    settings: Settings, tmp_path: Path
) -> None:
    nowhere = str(tmp_path / "no-nvidia-smi")
    wants = with_section(settings, "transcription", device="cuda")
    wants = with_section(wants, "llm", n_gpu_layers=-1)
    check = check_gpu_for_workers(wants, nvidia_smi=nowhere)
    assert check.status == "fail"
    assert check.detail.startswith("transcription.device, llm.n_gpu_layers ask for cuda but")
    relaxed = check_gpu_for_workers(settings, nvidia_smi=nowhere)
    assert relaxed.status == "ok"
    assert "CPU" in relaxed.detail


def test_a_gpu_hidden_by_cuda_visible_devices_is_not_visible_to_the_workers(
    settings: Settings,
) -> None:
    """On a machine with a GPU this is the real nvidia-smi; without one, the same verdict."""
    wants = with_section(settings, "diarization", device="cuda")
    check = check_gpu_for_workers(wants, environ={"CUDA_VISIBLE_DEVICES": ""})
    assert check.status == "fail"
    assert check.detail.startswith("diarization.device ask for cuda but")


# Models ---------------------------------------------------------------------------------------


def test_the_models_checked_are_the_configured_ones(settings: Settings, tmp_path: Path) -> None:
    names = configured_models(settings)
    assert names == [
        "whisper-tiny-en",
        "all-minilm-l6-v2",
        "qwen2.5-0.5b-instruct-q4",
        "silero-vad",
        "resemblyzer-encoder",
    ]
    assert {c.status for c in check_configured_models(settings, full=False)} == {"ok"}
    elsewhere = settings.model_copy(update={"models_dir": tmp_path / "empty"})
    assert {c.status for c in check_configured_models(elsewhere, full=False)} == {"fail"}
    unknown = with_section(settings, "transcription", model="whisper-large-v9")
    [check] = [c for c in check_configured_models(unknown, full=False) if "v9" in c.name]
    assert (check.status, check.detail) == ("fail", "configured but not in the manifest")


# Database role --------------------------------------------------------------------------------


def test_the_app_role_passes_the_role_check(database: Database) -> None:
    check = check_database_role(database)
    assert check.status == "ok", check.detail
    assert check.detail.startswith("role appliance_app: not a superuser, owns no tables")


def test_the_owner_role_fails_it_for_every_reason(admin_url: str, database: Database) -> None:
    engine = make_engine(admin_url)
    try:
        check = check_database_role(Database(engine, False))
    finally:
        engine.dispose()
    assert check.status == "fail"
    assert f"role {SUPERUSER} is a superuser" in check.detail
    assert "owns" in check.detail
    assert "may UPDATE, DELETE or TRUNCATE audit_checkpoints, audit_events" in check.detail


@pytest.fixture
def granted_too_much(admin_url: str, database: Database) -> Iterator[str]:
    """A lesser role that was granted UPDATE on the audit log by hand: its URL."""
    role = f"t_role_{uuid.uuid4().hex[:8]}"
    admin = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT SELECT, UPDATE ON audit_events TO {}").format(sql.Identifier(role))
        )
    yield admin_url.replace(f"://{SUPERUSER}:", f"://{role}:")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_role_that_may_update_the_audit_log_fails_for_that_alone(granted_too_much: str) -> None:
    engine = make_engine(granted_too_much)
    try:
        check = check_database_role(Database(engine, False))
    finally:
        engine.dispose()
    assert check.status == "fail"
    assert "superuser" not in check.detail
    assert "owns" not in check.detail
    assert "may UPDATE, DELETE or TRUNCATE audit_events" in check.detail


# Backups --------------------------------------------------------------------------------------


def test_backup_age_is_ok_within_a_day_a_warning_after_26_hours_and_a_failure_after_a_week(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    ages = (timedelta(hours=2), timedelta(hours=27), timedelta(days=8))
    found = [check_backup_age(now - age, tmp_path, now).status for age in ages]
    assert found == ["ok", "warn", "fail"]
    assert check_backup_age(now - timedelta(hours=27), tmp_path, now).detail.startswith(
        "newest 2026-11-30 09:00 UTC, 27.0 h ago"
    )
    missing = check_backup_age(None, tmp_path, now)
    assert (missing.status, missing.detail) == (
        "fail",
        f"no backup in {tmp_path}; run: appliance backup",
    )


def test_a_fresh_real_backup_passes_the_age_check(settings: Settings) -> None:
    from appliance.backup.create import create_backup

    assert check_backups(settings).status == "fail"
    made = create_backup(settings)
    check = check_backups(settings)
    assert check.status == "ok", check.detail
    assert check.detail.startswith(f"newest {made.created_at:%Y-%m-%d %H:%M} UTC")
    os.unlink(made.path)
