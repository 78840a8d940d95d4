"""Admin commands that change data: init, users, patients."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import click

from appliance.audit.service import AuditEntry, cli_actor, record
from appliance.cli import (
    data_dir_option,
    data_session,
    emit,
    json_option,
    main,
    one_line_errors,
    settings_for,
)
from appliance.clinic import service
from appliance.clinic.erasure import erase_patient
from appliance.clinic.models import Role
from appliance.clinic.schemas import PatientCreate, UserCreate
from appliance.crypto.service import keystore_for, purge_retired, rotate_kek
from appliance.instance import initialise


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
    with data_session(data_dir) as (_, session):
        user = service.add_user(session, cli_actor(), data)
    emit(user.model_dump(mode="json"), as_json, str(user.id))


@users.command("list")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None)
@data_dir_option
@json_option
@one_line_errors
def users_list(role: str | None, data_dir: Path | None, as_json: bool) -> None:
    """List users."""
    with data_session(data_dir) as (_, session):
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
    with data_session(data_dir) as (settings, session):
        store = keystore_for(settings)
        patient = service.add_patient(session, store, cli_actor(), data)
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


@patients.command("erase")
@click.option("--patient", "patient_id", type=click.UUID, required=True)
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
@data_dir_option
@json_option
@one_line_errors
def patients_erase(patient_id: uuid.UUID, yes: bool, data_dir: Path | None, as_json: bool) -> None:
    """Erase a patient: destroy their data key (crypto-shredding), rows and files."""
    if not yes:
        raise click.ClickException("erasure cannot be undone; repeat with --yes")
    with data_session(data_dir) as (settings, session):
        result = erase_patient(
            session, keystore_for(settings), cli_actor(), settings.files_dir, patient_id
        )
    emit(
        {
            "id": str(result.patient_id),
            "key_destroyed": result.key_destroyed,
            "rows_deleted": result.rows_deleted,
            "files_deleted": result.files_deleted,
        },
        as_json,
        f"Erased patient {result.patient_id}: data key destroyed, rows and "
        f"{result.files_deleted} files deleted.",
    )


@main.group()
def keys() -> None:
    """Key-encryption key operations."""


@keys.command("rotate")
@data_dir_option
@json_option
@one_line_errors
def keys_rotate(data_dir: Path | None, as_json: bool) -> None:
    """New KEK; re-wrap every patient data key; retire the old KEK. Safe to re-run."""
    with data_session(data_dir) as (settings, session):
        rotation = rotate_kek(keystore_for(settings))  # DB first: a rotation is always audited
        details = {
            "old_kek_id": rotation.old_kek_id,
            "new_kek_id": rotation.new_kek_id,
            "rewrapped": rotation.rewrapped,
        }
        record(session, cli_actor(), AuditEntry("keys.rotate", details=details))
    emit(
        {
            "id": rotation.new_kek_id,
            "old_kek_id": rotation.old_kek_id,
            "rewrapped": rotation.rewrapped,
        },
        as_json,
        f"Rotated {rotation.old_kek_id} -> {rotation.new_kek_id}; "
        f"re-wrapped {rotation.rewrapped} patient keys.",
    )


@keys.command("purge-retired")
@click.option("--yes", is_flag=True, help="Confirm: older key-store backups become unreadable.")
@data_dir_option
@json_option
@one_line_errors
def keys_purge_retired(yes: bool, data_dir: Path | None, as_json: bool) -> None:
    """Destroy retired KEKs no patient key depends on any more."""
    if not yes:
        raise click.ClickException(
            "key-store backups from before the last rotation become unreadable; repeat with --yes"
        )
    with data_session(data_dir) as (settings, session):
        purged = purge_retired(keystore_for(settings))
        record(session, cli_actor(), AuditEntry("keys.purge_retired", details={"kek_ids": purged}))
    emit({"purged": purged}, as_json, f"Destroyed {len(purged)} retired key-encryption keys.")
