"""Running the appliance playbook from tests: ansible-playbook as clinic IT runs it (a separate
process, the repository's ansible.cfg), its PLAY RECAP read back, and the unit files it
installed read the way systemd reads them (ExecStart, EnvironmentFile)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
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
