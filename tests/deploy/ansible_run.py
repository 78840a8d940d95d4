"""Running the appliance playbook from tests: ansible-playbook as clinic IT runs it (a separate
process, the repository's ansible.cfg), its PLAY RECAP read back, and the unit files it
installed read the way systemd reads them (ExecStart, EnvironmentFile)."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
VENV_BIN = Path(sys.executable).parent

_RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Recap:
    """The PLAY RECAP line of one host: what a second run must show as changed=0."""

    ok: int
    changed: int
    unreachable: int
    failed: int
    skipped: int
    rescued: int


@dataclass(frozen=True)
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    @property
    def recap(self) -> Recap:
        found = list(_RECAP.finditer(self.output))
        assert found, f"no PLAY RECAP in the output:\n{self.output[-3000:]}"
        groups = found[-1].groupdict()
        return Recap(**{k: int(v) for k, v in groups.items() if k != "host"})

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported `changed` (for a readable idempotence failure)."""
        names: list[str] = []
        task = ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.split("[", 1)[1].rsplit("]", 1)[0]
            elif line.startswith("changed:") and task not in names:
                names.append(task)
        return names


def ansible_env(home: Path) -> dict[str, str]:
    """The environment of an ansible command: this repository's ansible.cfg, no colours, no
    state outside `home`, no APPLIANCE_* or pip settings of the developer's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("APPLIANCE_", "ANSIBLE_", "PIP_", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(home),
        ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PIP_CONFIG_FILE=os.devnull,
    )
    return env


def write_inventory(path: Path) -> Path:
    """This machine as the `clinic` group, over the local connection, with this interpreter."""
    path.write_text(
        "[clinic]\n"
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    return path


def run_playbook(
    inventory: Path,
    variables: dict[str, Any],
    home: Path,
    *args: str,
    playbook: Path = ANSIBLE_DIR / "site.yml",
    timeout: int = 600,
) -> PlaybookRun:
    """ansible-playbook with `variables` as extra vars (a JSON file, so types survive)."""
    home.mkdir(parents=True, exist_ok=True)
    vars_file = home / f"vars-{time.monotonic_ns()}.json"
    vars_file.write_text(json.dumps(variables))
    started = time.monotonic()
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    completed = subprocess.run(
        [*command, "-e", f"@{vars_file}", *args],
        cwd=ANSIBLE_DIR,
        env=ansible_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return PlaybookRun(
        completed.returncode, completed.stdout + completed.stderr, time.monotonic() - started
    )


@dataclass(frozen=True)
class UnitService:
    """What systemd would run for a unit: the ExecStart argv and its EnvironmentFile values."""

    argv: tuple[str, ...]
    environment: dict[str, str]


def read_unit_service(unit: Path) -> UnitService:
    exec_start = ""
    env_files: list[Path] = []
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if line.startswith("ExecStart="):
            exec_start = line.removeprefix("ExecStart=")
        elif line.startswith("EnvironmentFile="):
            env_files.append(Path(line.removeprefix("EnvironmentFile=").lstrip("-")))
    assert exec_start, f"{unit} has no ExecStart="
    # Prefixes systemd understands (@, -, :, +, !) never appear in the appliance's units.
    assert exec_start[0] not in "@-:+!", exec_start
    environment: dict[str, str] = {}
    for env_file in env_files:
        for raw in env_file.read_text().splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                environment[key.strip()] = value.strip().strip('"')
    return UnitService(tuple(shlex.split(exec_start)), environment)


# The CI mode's database, variables and working folders, shared by the playbook test modules.

UNITS = (
    "appliance-web.service",
    "appliance-llm.service",
    "appliance-worker-gpu.service",
    "appliance-worker-cpu.service",
    "appliance-backup.service",
    "appliance-backup.timer",
)


@dataclass(frozen=True)
class PlaybookDatabase:
    """A database of its own on the tests' server, owned by an owner role, with an app role."""

    name: str
    owner: str
    app: str
    socket_dir: str
    superuser_uri: str  # psycopg conninfo of the server's superuser, on this database

    def url(self, role: str) -> str:
        return f"postgresql+psycopg://{role}:secret-{role}@/{self.name}?host={self.socket_dir}"


@dataclass(frozen=True)
class Playground:
    """Where the tests' playbook runs keep their inventory, ansible home and variables."""

    root: Path
    inventory: Path
    home: Path
    variables: dict[str, Any]
    database: PlaybookDatabase


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def ci_variables(prefix: Path, bundle: Path, database: PlaybookDatabase) -> dict[str, Any]:
    """The CI mode: everything under `prefix`, no systemctl, no packages, no new accounts,
    the tests' PostgreSQL instead of a managed one."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return {
        "appliance_prefix": str(prefix),
        "appliance_manage_services": False,
        "appliance_install_packages": False,
        "appliance_postgres_manage": False,
        "appliance_create_user": False,
        "appliance_user": user,
        "appliance_group": group,
        "appliance_root_user": user,
        "appliance_root_group": group,
        "appliance_bundle_src": str(bundle),
        "appliance_python": getattr(sys, "_base_executable", sys.executable),
        "appliance_database_url": database.url(database.app),
        "appliance_database_admin_url": database.url(database.owner),
        "appliance_web_host": "127.0.0.1",
        "appliance_web_port": free_port(),
        "appliance_tls_extra_sans": ["IP:127.0.0.1"],
        "ansible_become": False,
    }
