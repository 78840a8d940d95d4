"""`appliance init`: make a data directory into a working appliance, idempotently.

Order matters. The database is migrated before keys are made, so that a data directory whose
key file was lost is refused (a new KEK would orphan every patient's data key) instead of
silently re-keyed. The marker file is written last: without it the directory is incomplete.
If init created the directory and then fails, it removes it again: nothing half-initialised.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, make_url, text

from appliance.audit import service as audit
from appliance.audit.service import cli_actor, ensure_signing_key
from appliance.clinic.schemas import ClinicPublic
from appliance.clinic.service import ensure_clinic
from appliance.crypto.atomic import write_private_file
from appliance.crypto.envelope import Kek, generate_kek, load_kek, write_kek_file
from appliance.crypto.service import keystore_for
from appliance.db import current_revision, open_database, upgrade_to_head
from appliance.dbroles import ensure_login_role, grant_app_privileges
from appliance.settings import Settings, SettingsError

MARKER_FORMAT = 1


@dataclass(frozen=True)
class InitReport:
    data_dir: Path
    created: bool
    database: str
    revision: str | None
    kek_id: str
    clinic: ClinicPublic


def initialise(settings: Settings) -> InitReport:
    data_dir = settings.data_dir
    created = _prepare_data_dir(data_dir, settings)
    try:
        with open_database(settings, create=True, admin=True) as database:
            upgrade_to_head(database.engine)
            grant_app_role(settings, database.engine)
            kek = _ensure_keys(settings, database.engine)
            signing_key_id = ensure_signing_key(settings.audit_key_path)
            with database.session() as session:
                clinic = ensure_clinic(session, settings.clinic.name, settings.clinic.timezone)
                audit.record(
                    session,
                    cli_actor(),
                    audit.AuditEntry(
                        "appliance.init",
                        details={
                            "new_data_dir": created,
                            "kek_id": kek.id,
                            "audit_key_id": signing_key_id,
                        },
                    ),
                )
                session.commit()
            revision = current_revision(database.engine)
        _write_marker(settings)
    except BaseException:
        if created:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise
    return InitReport(
        data_dir=data_dir,
        created=created,
        database="embedded" if settings.uses_embedded_database else "external",
        revision=revision,
        kek_id=kek.id,
        clinic=clinic,
    )


def require_initialised(settings: Settings) -> None:
    if not settings.marker_path.is_file():
        raise SettingsError(
            f"{settings.data_dir} is not an initialised appliance; "
            f"run: appliance init --data-dir {settings.data_dir}"
        )


def _prepare_data_dir(data_dir: Path, settings: Settings) -> bool:
    """Create the data dir, or accept an existing one that is ours (or empty)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise SettingsError(f"--data-dir {data_dir} exists and is not a directory")
    if data_dir.is_dir():
        ours = settings.marker_path.exists() or (data_dir / "pgdata").exists()
        # keys/ and erasures.jsonl alone: put back from the key safe before a restore (README)
        restoring = {"keys", "erasures.jsonl"}
        if not ours and any(p.name not in restoring for p in data_dir.iterdir()):
            raise SettingsError(
                f"{data_dir} is not empty and is not an appliance data directory; "
                "choose an empty or new directory"
            )
        return False
    if not data_dir.parent.is_dir():
        raise SettingsError(f"the parent of --data-dir, {data_dir.parent}, does not exist")
    try:
        data_dir.mkdir(mode=0o700)
    except PermissionError:
        raise SettingsError(f"cannot create {data_dir}: permission denied") from None
    return True


def grant_app_role(settings: Settings, admin: Engine) -> None:
    """Grant the role the appliance runs as its privileges on every table (new tables get
    none until this runs): after migrations, and after a restore recreated the tables."""
    if settings.uses_embedded_database:
        role = settings.database.app_role
        ensure_login_role(admin, role)
    else:
        role = make_url(settings.external_database_url() or "").username or ""
    if role:
        grant_app_privileges(admin, role)


def _ensure_keys(settings: Settings, engine: Engine) -> Kek:
    store = keystore_for(settings)
    with engine.connect() as conn:
        has_patients = conn.execute(text("SELECT EXISTS (SELECT 1 FROM patients)")).scalar()
    kek_path = settings.kek_path
    if kek_path.exists():
        kek = load_kek(kek_path)
    elif has_patients or any(store.patient_ids()):
        raise SettingsError(
            f"the key file {kek_path} is missing but the appliance holds patient data; "
            "restore the key file from backup (a new key would make that data unreadable)"
        )
    else:
        kek = generate_kek()
        write_kek_file(kek_path, kek)
    unknown = store.wrapped_by() - set(store.keks())
    if unknown:
        raise SettingsError(
            f"patient keys are wrapped by {', '.join(sorted(unknown))}, which is not in "
            f"{settings.keys_dir}; restore the matching key file"
        )
    _ensure_secret(settings.secret_key_path)
    settings.keys_dir.mkdir(mode=0o700, exist_ok=True)
    settings.keys_dir.chmod(0o700)
    return kek


def _ensure_secret(path: Path) -> None:
    if not path.exists():
        write_private_file(path, secrets.token_hex(32).encode(), replace=False)


def _write_marker(settings: Settings) -> None:
    if settings.marker_path.exists():
        return
    settings.marker_path.write_text(
        json.dumps({"format": MARKER_FORMAT, "created_at": datetime.now(UTC).isoformat()})
    )
