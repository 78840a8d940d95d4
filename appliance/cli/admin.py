"""Admin commands that change data: init, users, patients."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from appliance.cli import data_dir_option, emit, json_option, main, one_line_errors, settings_for
from appliance.clinic import service
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientCreate, UserCreate
from appliance.crypto.envelope import load_kek
from appliance.db import open_database
from appliance.instance import initialise, require_initialised


@main.command()
@data_dir_option
@json_option
@one_line_errors
def init(data_dir: Path | None, as_json: bool) -> None:
    """Create config, keys and database (embedded by default), run migrations. Idempotent."""
    settings = settings_for(data_dir)
    report = initialise(settings)
    payload = {
        "id": str(report.clinic.id),
        "data_dir": str(report.data_dir),
        "created": report.created,
        "database": report.database,
        "revision": report.revision,
        "kek_id": report.kek_id,
        "clinic": report.clinic.model_dump(mode="json"),
    }
    verb = "Initialised" if report.created else "Checked (already initialised)"
    emit(
        payload,
        as_json,
        f"{verb} appliance in {report.data_dir}: {report.database} PostgreSQL, "
        f"migrations at {report.revision}, clinic {report.clinic.name!r}.",
    )


@main.group()
def users() -> None:
    """Staff, auditor and portal accounts."""


@users.command("add")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--email", required=True)
@click.option("--name", default=None, help="Display name (default: the e-mail's local part).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@data_dir_option
@json_option
@one_line_errors
def users_add(
    role: str,
    email: str,
    name: str | None,
    password_stdin: bool,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Add a user."""
    password = sys.stdin.read().rstrip("\r\n") if password_stdin else None
    if password_stdin and not password:
        raise click.ClickException("--password-stdin given but standard input was empty")
    data = UserCreate(
        email=email,
        name=email.split("@")[0] if name is None else name,
        role=Role(role),
        password=password,
    )
    settings = settings_for(data_dir)
    require_initialised(settings)
    with open_database(settings) as database, database.session() as session:
        user = service.add_user(session, data)
        session.commit()
    emit(user.model_dump(mode="json"), as_json, str(user.id))


@users.command("list")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None)
@data_dir_option
@json_option
@one_line_errors
def users_list(role: str | None, data_dir: Path | None, as_json: bool) -> None:
    """List users."""
    settings = settings_for(data_dir)
    require_initialised(settings)
    with open_database(settings) as database, database.session() as session:
        found = service.list_users(session, Role(role) if role else None)
    rows = [user.model_dump(mode="json") for user in found]
    emit(rows, as_json, "\n".join(f"{u.id}  {u.role:<9}  {u.email}" for u in found))


@main.group()
def patients() -> None:
    """Patients (identity fields are stored encrypted)."""


@patients.command("add")
@click.option("--name", required=True)
@click.option("--therapist", "therapist_email", required=True, help="The therapist's e-mail.")
@click.option("--email", default=None)
@data_dir_option
@json_option
@one_line_errors
def patients_add(
    name: str, therapist_email: str, email: str | None, data_dir: Path | None, as_json: bool
) -> None:
    """Add a patient and assign their therapist. Prints the patient id."""
    data = PatientCreate(name=name, email=email, therapist_email=therapist_email)
    settings = settings_for(data_dir)
    require_initialised(settings)
    kek = load_kek(settings.kek_path)
    with open_database(settings) as database, database.session() as session:
        patient = service.add_patient(session, kek, data)
        session.commit()
    # Scripts get ids, not the name they just typed: keeps PHI out of their logs.
    emit(
        {
            "id": str(patient.id),
            "therapist_ids": [str(t) for t in patient.therapist_ids],
            "created_at": patient.created_at.isoformat(),
        },
        as_json,
        str(patient.id),
    )
