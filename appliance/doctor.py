"""Health checks shared by `appliance doctor` (thorough) and `/health/detailed` (fast)."""

from __future__ import annotations

import shutil
import stat
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from appliance.db import Database, current_revision, head_revision
from appliance.modelfiles.install import check_model
from appliance.modelfiles.manifest import ModelError, models_for_profile
from appliance.settings import Settings

Status = Literal["ok", "warn", "fail"]
GIB = 1024**3


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    data: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_database(database: Database) -> list[Check]:
    try:
        with database.engine.connect() as conn:
            vector = conn.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar()
            server = conn.execute(text("SHOW server_version")).scalar()
        current, head = current_revision(database.engine), head_revision()
    except SQLAlchemyError as exc:
        return [Check("database", "fail", f"unreachable ({type(exc).__name__})")]
    kind = "embedded" if database.embedded else "external"
    checks = [Check("database", "ok", f"PostgreSQL {server} ({kind})")]
    if current == head:
        checks.append(Check("migrations", "ok", f"at head {head}"))
    else:
        checks.append(
            Check("migrations", "fail", f"at {current}, head is {head}; run appliance init")
        )
    checks.append(
        Check("pgvector", "ok", f"vector {vector}")
        if vector
        else Check("pgvector", "fail", "the vector extension is not installed")
    )
    checks.append(check_audit_privileges(database))
    return checks


def check_audit_privileges(database: Database) -> Check:
    """The role the appliance runs as must not be able to rewrite history."""
    with database.engine.connect() as conn:
        role, can_change = conn.execute(
            text(
                "SELECT current_user, has_table_privilege(current_user, 'audit_events', 'UPDATE')"
                " OR has_table_privilege(current_user, 'audit_events', 'DELETE')"
            )
        ).one()
    if can_change:
        detail = f"role {role} may UPDATE/DELETE audit rows (only the trigger stops it)"
        return Check("audit log", "warn", detail + "; run the appliance as a separate role")
    return Check("audit log", "ok", f"append-only for role {role}")


def check_keys(settings: Settings) -> list[Check]:
    checks = []
    keys = (
        ("kek", settings.kek_path),
        ("session key", settings.secret_key_path),
        ("audit signing key", settings.audit_key_path),
    )
    for label, path in keys:
        if not path.is_file():
            checks.append(Check(f"key: {label}", "fail", f"{path} is missing"))
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            checks.append(Check(f"key: {label}", "fail", f"{path} has mode {mode:04o}, needs 0600"))
        else:
            checks.append(Check(f"key: {label}", "ok", f"{path} mode {mode:04o}"))
    return checks


def check_models(settings: Settings, *, full: bool, profile: str = "demo") -> list[Check]:
    try:
        entries = models_for_profile(profile)
    except ModelError as exc:
        return [Check("models", "fail", str(exc))]
    checks = []
    for entry in entries:
        result = check_model(entry, settings.resolved_models_dir, full=full)
        status: Status = "ok" if result.status == "ok" else "fail"
        detail = (
            result.detail
            if result.status == "ok"
            else (f"{result.detail}; run: appliance models install --profile {profile}")
        )
        data = {"role": entry.role, "files": dict(result.files)} if result.files else None
        checks.append(Check(f"model: {entry.name}", status, detail, data))
    return checks


def check_disk(path: Path) -> Check:
    while not path.exists():
        path = path.parent
    free = shutil.disk_usage(path).free
    status: Status = "ok" if free >= 5 * GIB else "warn" if free >= GIB else "fail"
    return Check("disk", status, f"{free / GIB:.1f} GiB free at {path}")


def check_gpu() -> Check:
    """GPU presence without importing torch (which takes seconds and gigabytes)."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return Check("gpu", "ok", "no NVIDIA GPU found; models run on the CPU")
    try:
        out = subprocess.run(
            [nvidia_smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return Check("gpu", "warn", "nvidia-smi is present but failed; check the NVIDIA driver")
    return Check("gpu", "ok", out.replace("\n", "; ") or "NVIDIA GPU present")
