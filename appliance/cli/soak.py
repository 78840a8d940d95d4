"""`appliance soak ...`: the long forms of the reliability and security runs (issue 10).

Each subcommand lives beside its driver in `appliance/soak/` and is registered here; the CI
suite runs a short form of each through the same driver functions."""

from __future__ import annotations

from appliance.cli import main


@main.group("soak")
def soak() -> None:
    """Long reliability and security runs: faults, fuzzing, adversarial chat, load."""


# Registered subcommands (one line each; keep the soak modules light at import time).
