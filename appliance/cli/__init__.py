"""The admin CLI (`appliance ...`), in the spirit of Nextcloud's `occ`.

Every command exits non-zero with a one-line reason on bad input; `--json` prints
machine-readable output (objects that were created carry their `id`).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from litestar.exceptions import HTTPException
from pydantic import ValidationError
from sqlmodel import Session

from appliance import __version__
from appliance.db import open_database
from appliance.errors import DomainError, describe_validation_error
from appliance.instance import require_initialised
from appliance.logs import configure_logging
from appliance.modelfiles.manifest import ModelError
from appliance.pgserver import DatabaseUnavailable
from appliance.settings import Settings, SettingsError, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def data_dir_option(fn: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        help="Appliance data directory (default: $APPLIANCE_DATA_DIR or ./var).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(fn)


def one_line_errors(fn: F) -> F:
    """Turn every expected failure into `Error: <reason>` and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            raise click.ClickException(describe_validation_error(exc)) from None
        except (SettingsError, DatabaseUnavailable, DomainError, ModelError) as exc:
            raise click.ClickException(str(exc).splitlines()[0]) from None
        except ValueError as exc:  # e.g. an unreadable key file
            raise click.ClickException(str(exc).splitlines()[0]) from None
        except HTTPException as exc:  # a role check shared with the web (`Principal.require`)
            raise click.ClickException(str(exc.detail).splitlines()[0]) from None

    return wrapper  # type: ignore[return-value]


def settings_for(data_dir: Path | None) -> Settings:
    return load_settings(data_dir=data_dir)


@contextmanager
def data_session(data_dir: Path | None) -> Iterator[tuple[Settings, Session]]:
    """What most commands need: an initialised appliance's settings and a database session.
    The session commits when the block succeeds and rolls back when it raises."""
    settings = settings_for(data_dir)
    require_initialised(settings)
    with open_database(settings) as database, database.session() as session:
        yield settings, session
        session.commit()


def emit(payload: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(payload, default=str, indent=None) if as_json else human)


def run() -> None:
    """Entry point. Usage errors too are one line (`Error: ...`, exit 2), for scripts' logs."""
    try:
        main.main(standalone_mode=False)
    except click.UsageError as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(1) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="appliance")
def main() -> None:
    """The clinic appliance: admin commands."""
    # Command output goes to stdout; only warnings (as JSON lines) reach stderr.
    configure_logging("WARNING", sys.stderr)
    logging.captureWarnings(True)


from appliance.cli import (  # noqa: E402
    access,
    admin,
    audit,
    backup,
    bundle,
    chat,
    clinical,
    jobs,
    llm,
    ops,
    retrieval,
    soak,
    speech,
)

__all__ = [
    "access",
    "admin",
    "audit",
    "backup",
    "bundle",
    "chat",
    "clinical",
    "jobs",
    "llm",
    "main",
    "ops",
    "retrieval",
    "run",
    "soak",
    "speech",
]
