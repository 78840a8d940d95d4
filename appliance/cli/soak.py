"""`appliance soak ...`: the long forms of the reliability and security runs (issue 10).

Each subcommand lives beside its driver in `appliance/soak/` and is registered here; the CI
suite runs a short form of each through the same driver functions."""

from __future__ import annotations

from appliance.cli import main


@main.group("soak")
def soak() -> None:
    """Long reliability and security runs: faults, fuzzing, adversarial chat, load."""


# Registered subcommands (one line each; keep the soak modules light at import time).
from appliance.soak.load import load_command  # noqa: E402

soak.add_command(load_command, "load")
from appliance.soak.worker_faults import worker_faults_command  # noqa: E402

soak.add_command(worker_faults_command, "worker-faults")
from appliance.soak.hostile_run import fuzz_command  # noqa: E402

soak.add_command(fuzz_command, "fuzz")
from appliance.soak.web_faults import web_faults_command  # noqa: E402

soak.add_command(web_faults_command, "web-faults")
from appliance.soak.adversarial import adversarial_command  # noqa: E402

soak.add_command(adversarial_command, "chat")
