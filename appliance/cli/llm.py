"""`appliance llm`: the local language-model service (its own long-lived process)."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli import data_dir_option, main, one_line_errors, settings_for


@main.command("llm")
@click.option("--host", default=None, help="Loopback address to listen on (default from config).")
@click.option("--port", type=click.IntRange(1, 65535), default=None)
@data_dir_option
@one_line_errors
def llm(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Serve the configured GGUF chat model on loopback HTTP (streaming) until SIGTERM.

    Needs only the configuration and the model file, not the database, so it can start
    before or without the rest of the appliance."""
    from appliance.chat.llm_service import serve

    serve(settings_for(data_dir), host=host, port=port)
