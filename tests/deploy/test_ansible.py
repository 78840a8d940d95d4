"""The Ansible playbook (ansible/): clean under `--syntax-check` and ansible-lint's production
profile; a real apply on this machine under a temporary prefix, from a real offline bundle,
against the tests' PostgreSQL; a second apply that changes nothing; the web unit started with
its exact ExecStart and EnvironmentFile answering /health/ready; an upgrade whose migration
fails leaving the previous release live; and the postgres role's checks and SQL.

The long pieces (bundle build, two applies) sit behind one module-scoped fixture."""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import run_cli
from tests.deploy.ansible_run import (
    ANSIBLE_DIR,
    UNITS,
    VENV_BIN,
    PlaybookDatabase,
    PlaybookRun,
    Playground,
    ansible_env,
    read_unit_service,
    run_playbook,
    write_inventory,
)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Installation:
    prefix: Path
    inventory: Path
    home: Path
    variables: dict[str, Any]
    database: PlaybookDatabase
    first: PlaybookRun
    second: PlaybookRun
    kek_after_first: bytes


@pytest.fixture(scope="module")
def installed(playground: Playground) -> Installation:
    """A core bundle built for real, applied twice (about 2-3 minutes on 2 cores)."""
    bundle = playground.variables["appliance_bundle_src"]
    built = run_cli("bundle", "build", "--profile", "core", "--out", bundle)
    assert built.returncode == 0, built.stderr
    prefix = Path(playground.variables["appliance_prefix"])
    inventory, home, variables = playground.inventory, playground.home, playground.variables
    first = run_playbook(inventory, variables, home)
    assert first.returncode == 0, first.output[-6000:]
    kek = (prefix / "var/lib/appliance/keys/kek.key").read_bytes()
    second = run_playbook(inventory, variables, home)
    print(f"\nansible apply: first {first.seconds:.1f} s, second {second.seconds:.1f} s")
    return Installation(prefix, inventory, home, variables, playground.database, first, second, kek)


def test_the_playbook_passes_the_syntax_check(tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path / "inventory.ini")
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "site.yml", "--syntax-check"],
        cwd=ANSIBLE_DIR,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_with_the_production_profile_finds_nothing(tmp_path: Path) -> None:
    """Offline (the .ansible-lint file and --offline): no galaxy, no version check."""
    env = ansible_env(tmp_path) | {"ANSIBLE_LINT_NODEPS": "1", "NO_COLOR": "1"}
    result = subprocess.run(
        [str(VENV_BIN / "ansible-lint"), "--offline", "--profile", "production", "-q"],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_first_apply_installs_a_release_from_the_bundle_with_private_config_and_keys(
    installed: Installation,
) -> None:
    prefix = installed.prefix
    assert installed.first.recap.failed == 0
    assert installed.first.recap.changed > 0
    live = (prefix / "opt/appliance/venv").resolve()
    assert live.parent.parent == (prefix / "opt/appliance/releases").resolve()
    assert (live / "bin/appliance").is_file()
    # The bundle's copy on the server is exactly the bundle: the verifier refuses extras.
    assert sorted(p.name for p in (prefix / "opt/appliance/bundle").iterdir()) == [
        "SHA256SUMS",
        "manifest.json",
        "wheels",
    ]
    modes = {
        "etc/appliance": 0o750,
        "etc/appliance/appliance.toml": 0o640,
        "etc/appliance/appliance.env": 0o640,
        "etc/appliance/db-url": 0o600,
        "etc/appliance/db-admin-url": 0o600,
        "etc/appliance/tls/ca.key": 0o600,
        "etc/appliance/tls/server.key": 0o600,
        "var/lib/appliance": 0o700,
        "var/lib/appliance/keys/kek.key": 0o600,
        "var/backups/appliance": 0o700,
    }
    for path, mode in modes.items():
        assert (prefix / path).stat().st_mode & 0o777 == mode, path
    # The secrets are in the files the TOML names, never in the TOML itself.
    toml = (prefix / "etc/appliance/appliance.toml").read_text()
    assert "secret-" not in toml
    assert f'url_file = "{prefix}/etc/appliance/db-url"' in toml
    assert f'tls_key_file = "{prefix}/etc/appliance/tls/server.key"' in toml
    environment = (prefix / "etc/appliance/appliance.env").read_text()
    assert "HF_HUB_OFFLINE=1" in environment
    assert "PYANNOTE_METRICS_ENABLED=0" in environment
    # The certificate is for the LAN name and signed by the local CA.
    checked = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.crt", "server.crt"],
        cwd=prefix / "etc/appliance/tls",
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_units_are_the_repository_files_with_paths_moved_under_the_prefix(
    installed: Installation,
) -> None:
    """The prefix and the account are the only differences, and every appliance path moved."""
    prefix = str(installed.prefix)
    account = {
        f"User={installed.variables['appliance_user']}\n": "User=appliance\n",
        f"Group={installed.variables['appliance_group']}\n": "Group=appliance\n",
    }
    for name in UNITS:
        source = (ANSIBLE_DIR.parent / "systemd" / name).read_text()
        text = (installed.prefix / "etc/systemd/system" / name).read_text()
        for path in (
            "/opt/appliance",
            "/etc/appliance",
            "/var/lib/appliance",
            "/var/backups/appliance",
        ):
            assert text.count(path) == text.count(prefix + path) == source.count(path), name
        unprefixed = text.replace(prefix, "")
        for ours, theirs in account.items():
            unprefixed = unprefixed.replace(ours, theirs)
        assert unprefixed == source, name


def test_a_second_apply_changes_nothing_and_keeps_the_keys(installed: Installation) -> None:
    recap = installed.second.recap
    assert installed.second.returncode == 0, installed.second.output[-4000:]
    assert (recap.changed, recap.failed) == (0, 0), installed.second.changed_tasks()
    kek = (installed.prefix / "var/lib/appliance/keys/kek.key").read_bytes()
    assert kek == installed.kek_after_first


def test_the_web_unit_started_with_its_exact_exec_start_answers_ready_over_tls(
    installed: Installation, tmp_path: Path
) -> None:
    """HTTPS with the certificate of the playbook's CA, checked against that CA."""
    service = read_unit_service(installed.prefix / "etc/systemd/system/appliance-web.service")
    assert service.argv[0] == f"{installed.prefix}/opt/appliance/venv/bin/appliance"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **service.environment}
    trust = ssl.create_default_context(cafile=installed.prefix / "etc/appliance/tls/ca.crt")
    url = f"https://127.0.0.1:{installed.variables['appliance_web_port']}/health/ready"
    with (tmp_path / "web.log").open("wb") as log:
        process = subprocess.Popen(service.argv, env=env, stdout=log, stderr=log, cwd=tmp_path)
        try:
            status, deadline = 0, time.monotonic() + 60
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    status = httpx.get(url, timeout=5, verify=trust).status_code
                except httpx.TransportError:
                    status = 0
                if status == 200:
                    break
                time.sleep(0.5)
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert status == 200, (tmp_path / "web.log").read_text()[-3000:]


def test_a_failed_migration_leaves_the_previous_release_live(installed: Installation) -> None:
    """A database at a revision the new release does not know cannot be migrated: the run
    fails at the migration, the venv symlink still names the old release, no unit changed."""
    link = installed.prefix / "opt/appliance/venv"
    before = os.readlink(link)
    units = {p: p.stat().st_mtime_ns for p in (installed.prefix / "etc/systemd/system").rglob("*")}
    live_config = (installed.prefix / "etc/appliance/appliance.toml").read_text()
    with psycopg.connect(installed.database.superuser_uri, autocommit=True) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone() or ("",)
        conn.execute("UPDATE alembic_version SET version_num = 'f00000000bad'")
    try:
        result = run_playbook(
            installed.inventory,
            installed.variables
            | {"appliance_release": "0.0.0-next", "appliance_clinic_name": "Renamed Clinic"},
            installed.home,
            "--tags",
            "appliance",
        )
    finally:
        with psycopg.connect(installed.database.superuser_uri, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (revision,))
    assert result.returncode != 0
    assert result.recap.failed == 1
    assert "was not made live" in " ".join(result.output.split())
    assert (installed.prefix / "opt/appliance/releases/0.0.0-next/venv/bin/appliance").is_file()
    assert os.readlink(link) == before
    assert {p: p.stat().st_mtime_ns for p in units} == units
    # The running release keeps the configuration it was started with.
    assert (installed.prefix / "etc/appliance/appliance.toml").read_text() == live_config
    assert (
        "Renamed Clinic"
        in (installed.prefix / "opt/appliance/releases/0.0.0-next/appliance.toml").read_text()
    )


def test_the_bundles_models_are_installed_private_and_traversable_and_a_rerun_changes_nothing(
    playground: Playground, tmp_path: Path
) -> None:
    """The core bundle of the apply test has no models, so the models step runs here on its
    own, with a model folder as a demo or gpu bundle carries it."""
    bundle, models = tmp_path / "bundle", tmp_path / "root/var/lib/appliance/models"
    (bundle / "models/whisper").mkdir(parents=True)
    (bundle / "models/whisper/model.bin").write_bytes(b"weights")
    (bundle / "models/whisper/config.json").write_text("{}")
    playbook = tmp_path / "models.yml"
    playbook.write_text(
        "- name: The appliance role's models step\n  hosts: clinic\n  gather_facts: false\n"
        f"  vars_files: ['{ANSIBLE_DIR}/group_vars/all.yml']\n"
        "  tasks:\n    - name: Run it\n      ansible.builtin.include_role:\n"
        "        name: appliance\n        tasks_from: models.yml\n"
    )
    variables = playground.variables | {
        "appliance_prefix": str(tmp_path / "root"),
        "appliance_bundle_dir": str(bundle),
        "appliance_manifest": {"models": [{"name": "whisper"}]},
    }
    first = run_playbook(playground.inventory, variables, playground.home, playbook=playbook)
    assert first.returncode == 0, first.output[-4000:]
    second = run_playbook(playground.inventory, variables, playground.home, playbook=playbook)
    assert second.recap.changed == 0, second.changed_tasks()
    assert (models / "whisper/model.bin").read_bytes() == b"weights"
    modes = {
        path.relative_to(models).as_posix(): oct(path.stat().st_mode & 0o777)
        for path in [models, *models.rglob("*")]
    }
    assert modes == {
        ".": "0o750",
        "whisper": "0o750",
        "whisper/model.bin": "0o640",
        "whisper/config.json": "0o640",
    }
