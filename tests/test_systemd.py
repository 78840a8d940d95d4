"""The unit files in systemd/: `systemd-analyze verify` finds nothing to say about any of them,
each carries the hardening the deployment promises, and each ExecStart is a command line the
real CLI accepts.

`verify` checks that ExecStart's binary exists, and /opt/appliance/venv is not there in CI. So
the units are verified as Ansible installs them under `appliance_prefix`: the same files with
the CLI's path rewritten to this checkout's `.venv/bin/appliance`. Nothing else changes, and a
test below proves that this harness still fails on broken units.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import click
import pytest

from tests.conftest import REPO

UNITS_DIR = REPO / "systemd"
SERVICES = (
    "appliance-web.service",
    "appliance-llm.service",
    "appliance-worker-gpu.service",
    "appliance-worker-cpu.service",
    "appliance-backup.service",
)
UNITS = (*SERVICES, "appliance-backup.timer")
GPU_UNITS = ("appliance-llm.service", "appliance-worker-gpu.service")
INSTALLED_CLI = "/opt/appliance/venv/bin/appliance"
# The CLI this test run uses: beside the interpreter in a venv, else on PATH.
CLI = Path(sys.executable).with_name("appliance")
if not CLI.is_file():
    CLI = Path(shutil.which("appliance") or CLI)
ANALYZE = shutil.which("systemd-analyze")

needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (CI installs systemd)"
)

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Section -> key -> every value (keys such as SystemCallFilter may repeat)."""
    unit: Unit = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        unit[section][key.strip()].append(value.strip())
    return unit


def load(name: str) -> Unit:
    return parse_unit((UNITS_DIR / name).read_text())


def installed_copy(folder: Path, name: str, text: str | None = None) -> Path:
    """The unit as Ansible writes it under a prefix: only the CLI's path differs."""
    body = (UNITS_DIR / name).read_text() if text is None else text
    target = folder / name
    target.write_text(body.replace(INSTALLED_CLI, str(CLI)))
    return target


def verify_problems(*units: Path) -> list[str]:
    """What `systemd-analyze verify` reports. Its exit status alone misses most mistakes (a
    misspelt value or an unknown key is a warning, "ignoring"), so any output is a problem."""
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=units[0].parent,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    return problems


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_has_nothing_to_say_about_the_unit(
    name: str, tmp_path: Path
) -> None:
    if name.endswith(".timer"):  # verify loads the service the timer starts
        installed_copy(tmp_path, "appliance-backup.service")
    assert verify_problems(installed_copy(tmp_path, name)) == []


BROKEN = {
    "a misspelt value": ("ProtectSystem=strict", "ProtectSystem=strcit"),
    "an unknown directive": ("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
    "a directive in the wrong section": ("[Service]", "[Service]\nWantedBy=multi-user.target"),
    "no ExecStart": ("ExecStart=", "#ExecStart="),
    "a binary that is not there": (
        "ExecStart=/opt/appliance/venv/bin/appliance",
        "ExecStart=/opt/appliance/venv/bin/appliance-nope",
    ),
}


@needs_analyze
@pytest.mark.parametrize("mistake", BROKEN)
def test_the_verify_harness_fails_on_a_broken_unit(mistake: str, tmp_path: Path) -> None:
    old, new = BROKEN[mistake]
    text = (UNITS_DIR / "appliance-worker-cpu.service").read_text()
    assert old in text
    broken = installed_copy(tmp_path, "appliance-worker-cpu.service", text.replace(old, new, 1))
    assert verify_problems(broken) != []


# Table: directive -> the value every service has. Per-unit differences are below it.
EVERY_SERVICE = {
    "User": "appliance",
    "Group": "appliance",
    "EnvironmentFile": "/etc/appliance/appliance.env",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "IPAddressDeny": "any",
    "Restart": "on-failure",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
}
# Present with a value chosen per unit (the test checks that they are there at all).
EVERY_SERVICE_SETS = ("MemoryMax", "RestartSec", "TimeoutStopSec", "MemoryDenyWriteExecute")
# Per unit: directives whose values differ between units.
PER_UNIT: dict[str, dict[str, list[str]]] = {
    "appliance-web.service": {
        "ReadWritePaths": ["/var/lib/appliance"],
        "IPAddressAllow": ["localhost"],  # + the LAN, in Ansible's drop-in
        "MemoryDenyWriteExecute": ["no"],
    },
    "appliance-llm.service": {
        "ReadOnlyPaths": ["/var/lib/appliance", "/etc/appliance"],
        "ReadWritePaths": [],  # it writes nothing
        "IPAddressAllow": ["localhost"],
        "MemoryDenyWriteExecute": ["no"],
    },
    "appliance-worker-gpu.service": {
        "ReadWritePaths": ["/var/lib/appliance"],
        "IPAddressAllow": ["localhost"],
        "MemoryDenyWriteExecute": ["no"],
    },
    "appliance-worker-cpu.service": {
        "ReadWritePaths": ["/var/lib/appliance"],
        "IPAddressAllow": ["localhost"],
        "MemoryDenyWriteExecute": ["no"],
    },
    "appliance-backup.service": {
        "Type": ["oneshot"],
        "ReadWritePaths": ["/var/lib/appliance /var/backups/appliance"],
        "IPAddressAllow": ["localhost"],
        "MemoryDenyWriteExecute": ["yes"],
    },
}
DATABASE_USERS = [name for name in SERVICES if name != "appliance-llm.service"]


@pytest.mark.parametrize("name", SERVICES)
@pytest.mark.parametrize("directive", EVERY_SERVICE)
def test_every_service_has_the_hardening_directive(name: str, directive: str) -> None:
    assert load(name)["Service"][directive] == [EVERY_SERVICE[directive]]


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_sets_its_limits_and_names_its_journal(name: str) -> None:
    service = load(name)["Service"]
    for directive in EVERY_SERVICE_SETS:
        assert len(service[directive]) == 1, directive
    assert service["SyslogIdentifier"] == [name.removesuffix(".service")]
    assert "/etc/appliance" in service["ReadOnlyPaths"]
    assert service["ExecStart"][0].startswith(f"{INSTALLED_CLI} ")
    unit = load(name)["Unit"]
    assert unit["StartLimitIntervalSec"]
    assert unit["StartLimitBurst"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_has_its_own_paths_network_and_memory_choices(name: str) -> None:
    service = load(name)["Service"]
    for directive, values in PER_UNIT[name].items():
        assert service[directive] == values, directive


@pytest.mark.parametrize("name", DATABASE_USERS)
def test_services_that_use_the_database_start_after_it_and_the_network(name: str) -> None:
    unit = load(name)["Unit"]
    for directive in ("After", "Wants"):
        named = " ".join(unit[directive]).split()
        assert "postgresql.service" in named, directive
        assert "network-online.target" in named, directive


@pytest.mark.parametrize("name", SERVICES)
def test_only_the_gpu_services_see_devices_and_then_only_nvidia_ones(name: str) -> None:
    service = load(name)["Service"]
    if name in GPU_UNITS:
        assert service["PrivateDevices"] == ["no"]
        assert service["DevicePolicy"] == ["closed"]
        assert service["DeviceAllow"] == ["char-nvidia* rw"]
    else:
        assert service["PrivateDevices"] == ["yes"]
        assert service["DeviceAllow"] == []


def test_the_language_model_cannot_read_keys_recordings_or_database_credentials() -> None:
    service = load("appliance-llm.service")["Service"]
    hidden = " ".join(service["InaccessiblePaths"]).split()
    for path in ("keys", "files", "pgdata"):
        assert f"-/var/lib/appliance/{path}" in hidden
    assert {"-/etc/appliance/db-url", "-/etc/appliance/db-admin-url"} <= set(hidden)


def test_the_backup_timer_starts_the_backup_daily_catching_up_after_downtime() -> None:
    timer = load("appliance-backup.timer")["Timer"]
    assert timer["Persistent"] == ["true"]
    assert timer["Unit"] == ["appliance-backup.service"]
    assert timer["RandomizedDelaySec"] not in ([], ["0"])
    assert load("appliance-backup.timer")["Install"]["WantedBy"] == ["timers.target"]


@needs_analyze
def test_the_backup_timer_elapses_once_every_24_hours() -> None:
    assert ANALYZE is not None
    (calendar,) = load("appliance-backup.timer")["Timer"]["OnCalendar"]
    result = subprocess.run(
        [ANALYZE, "calendar", "--iterations=3", calendar],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "TZ": "UTC", "SYSTEMD_LOG_COLOR": "0"},
    )
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+)", result.stdout)
    times = [datetime.fromisoformat(stamp) for stamp in stamps]
    assert len(times) == 3
    assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(days=1)] * 2


def exec_start_arguments(name: str) -> list[str]:
    (line,) = load(name)["Service"]["ExecStart"]
    program, *arguments = line.split()
    assert program == INSTALLED_CLI
    return arguments


def parse_with_the_real_cli(arguments: list[str]) -> click.Context:
    """Resolve the command line as `appliance` does and run every option's validation (stage
    names included) without running the command: `--help` would skip the validation."""
    from appliance.cli import main

    command: click.Command = main
    name, rest, parent = "appliance", list(arguments), None
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        parent = click.Context(command, info_name=name, parent=parent)
        found = command.get_command(parent, rest[0])
        if found is None:
            raise click.UsageError(f"no command {rest[0]!r} in `{name}`")
        command, name, rest = found, rest[0], rest[1:]
    if isinstance(command, click.Group) and not command.invoke_without_command:
        raise click.UsageError(f"`{name}` is a group: a unit must name one of its commands")
    return command.make_context(name, rest, parent=parent)


@pytest.mark.parametrize("name", SERVICES)
def test_every_exec_start_is_a_command_line_the_real_cli_accepts(name: str) -> None:
    parse_with_the_real_cli(exec_start_arguments(name))


@pytest.mark.parametrize("name", SERVICES)
def test_every_exec_start_command_answers_help_from_the_installed_entry_point(name: str) -> None:
    arguments = exec_start_arguments(name)
    result = subprocess.run(
        [str(CLI), *arguments, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: appliance ")


def test_a_unit_with_a_misspelt_stage_would_be_refused_by_the_cli() -> None:
    with pytest.raises(click.BadParameter, match="unknown stage transcibe"):
        parse_with_the_real_cli(["worker", "--only", "transcibe,diarize"])


def test_the_two_workers_split_the_pipeline_so_every_stage_has_exactly_one() -> None:
    from appliance.cli.jobs import stages_to_run
    from appliance.pipeline.stages import pipeline

    def runs(name: str) -> frozenset[str]:
        params = parse_with_the_real_cli(exec_start_arguments(name)).params
        chosen = stages_to_run(params["only"], params["skip"])
        assert chosen is not None
        return chosen

    gpu, cpu = runs("appliance-worker-gpu.service"), runs("appliance-worker-cpu.service")
    assert gpu == {"transcribe", "diarize", "attribute", "report"}
    assert cpu == {"probe", "chunk", "embed"}
    assert gpu.isdisjoint(cpu)
    assert gpu | cpu == set(pipeline())


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_systemd_rates_every_service_as_well_contained(name: str, tmp_path: Path) -> None:
    """`systemd-analyze security` on the unit file alone: 0 is fully locked down, 10 is
    nothing at all; 1.2-1.4 when written. The threshold leaves room for newer systemd
    versions adding checks, not for dropping hardening."""
    assert ANALYZE is not None
    unit = installed_copy(tmp_path, name)
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--threshold=25", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    (score,) = re.findall(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert float(score) <= 2.5
