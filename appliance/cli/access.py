"""Account and access commands: disable users, link portal accounts, API keys."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import click

from appliance.audit.service import AuditEntry, cli_actor, record
from appliance.auth import apikeys
from appliance.auth.service import set_active, set_password
from appliance.cli import (
    data_dir_option,
    data_session,
    emit,
    json_option,
    main,
    one_line_errors,
)
from appliance.cli.admin import patients, users
from appliance.clinic.models import Role
from appliance.clinic.service import link_portal_user


@users.command("disable")
@click.option("--email", required=True)
@data_dir_option
@json_option
@one_line_errors
def users_disable(email: str, data_dir: Path | None, as_json: bool) -> None:
    """Disable an account: every session and API key of it stops working at once."""
    with data_session(data_dir) as (_, session):
        ended = set_active(session, cli_actor(), email, active=False)
    emit({"email": email, "sessions_ended": ended}, as_json, f"Disabled; {ended} sessions ended.")


@users.command("enable")
@click.option("--email", required=True)
@data_dir_option
@one_line_errors
def users_enable(email: str, data_dir: Path | None) -> None:
    """Re-enable a disabled account."""
    with data_session(data_dir) as (_, session):
        set_active(session, cli_actor(), email, active=True)
    click.echo("Enabled.")


@users.command("set-password")
@click.option("--email", required=True)
@data_dir_option
@one_line_errors
def users_set_password(email: str, data_dir: Path | None) -> None:
    """Set a password, read from standard input (never from the command line)."""
    password = sys.stdin.read().rstrip("\r\n")
    if not 12 <= len(password) <= 1024:
        raise click.ClickException("the password must be 12 to 1024 characters long")
    with data_session(data_dir) as (_, session):
        set_password(session, cli_actor(), email, password)
    click.echo("Password set.")


@patients.command("link")
@click.option("--patient", "patient_id", type=click.UUID, required=True)
@click.option("--user", "email", required=True, help="E-mail of a user with role patient.")
@data_dir_option
@one_line_errors
def patients_link(patient_id: uuid.UUID, email: str, data_dir: Path | None) -> None:
    """Link a patient record to the portal account that may read it."""
    with data_session(data_dir) as (_, session):
        link_portal_user(session, cli_actor(), patient_id, email)
    click.echo("Linked.")


@main.group("apikeys")
def apikeys_group() -> None:
    """API keys for integrations (X-API-Key header)."""


@apikeys_group.command("create")
@click.option("--user", "email", required=True, help="The user the key acts as.")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None)
@data_dir_option
@json_option
@one_line_errors
def apikeys_create(
    email: str, name: str, role: str | None, data_dir: Path | None, as_json: bool
) -> None:
    """Create a key. It is printed once and cannot be shown again."""
    with data_session(data_dir) as (_, session):
        issued = apikeys.issue(session, email, name, Role(role) if role else None)
        record(
            session,
            cli_actor(),
            AuditEntry(
                "apikey.create",
                object_type="api_key",
                object_id=str(issued.id),
                details={"role": issued.role},
            ),
        )
    emit({"id": str(issued.id), "key": issued.key, "role": issued.role}, as_json, issued.key)


@apikeys_group.command("revoke")
@click.option("--id", "key_id", type=click.UUID, required=True)
@data_dir_option
@one_line_errors
def apikeys_revoke(key_id: uuid.UUID, data_dir: Path | None) -> None:
    """Revoke a key; requests with it fail from now on."""
    with data_session(data_dir) as (_, session):
        apikeys.revoke(session, key_id)
        record(
            session,
            cli_actor(),
            AuditEntry("apikey.revoke", object_type="api_key", object_id=str(key_id)),
        )
    click.echo("Revoked.")
