"""What every long-running service process (web, worker, llm) does before it serves."""

from __future__ import annotations

from appliance.logs import configure_logging
from appliance.observability.loads import share_loads
from appliance.settings import Settings


def start_service_process(settings: Settings) -> None:
    """Logging as configured (JSON lines with journald priorities under systemd), and model
    load times shared through the data dir so the web process's /metrics shows every
    process's loads."""
    configure_logging(settings.logging.level, fmt=settings.logging.format)
    share_loads(settings)
