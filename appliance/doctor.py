"""Health checks shared by `appliance doctor` (thorough) and `/health/detailed` (fast), and
the production checks of `appliance doctor --production`: services, GPU for the workers, the
configured models, the database role, blocked egress, disk and backup age."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from appliance.db import Database, current_revision, head_revision
from appliance.dbroles import APPEND_ONLY_TABLES
from appliance.modelfiles.install import check_model
from appliance.modelfiles.manifest import ModelError, load_manifest, models_for_profile
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


# Production checks (`appliance doctor --production`) -----------------------------------------

SERVICES = ("appliance-web", "appliance-llm", "appliance-worker-gpu", "appliance-worker-cpu")
# Public resolvers' HTTPS ports: always up, so a connection that fails was blocked on the way.
EGRESS_TARGETS = (("1.1.1.1", 443), ("9.9.9.9", 443))
BACKUP_WARN = timedelta(hours=26)  # a nightly timer that missed one night
BACKUP_FAIL = timedelta(days=7)


def under_systemd() -> bool:
    """sd_booted(): systemd is the init system of this machine (not merely installed)."""
    return Path("/run/systemd/system").is_dir()


def check_services(
    units: Sequence[str] = SERVICES, *, systemctl: str | None = None, booted: bool | None = None
) -> list[Check]:
    """`systemctl is-active` for each unit: one check per unit."""
    systemctl = systemctl or shutil.which("systemctl")
    if systemctl is None or not (under_systemd() if booted is None else booted):
        return [Check("services", "warn", f"not under systemd; cannot check {', '.join(units)}")]
    try:
        out = subprocess.run(
            [systemctl, "is-active", *units], capture_output=True, text=True, timeout=15
        ).stdout.split()
    except (subprocess.SubprocessError, OSError) as exc:
        return [Check("services", "fail", f"systemctl is-active failed ({type(exc).__name__})")]
    checks = []
    for unit, state in zip(units, [*out, *["unknown"] * len(units)], strict=False):
        if state == "active":
            checks.append(Check(f"service: {unit}", "ok", "active"))
        else:
            checks.append(Check(f"service: {unit}", "fail", f"{state}; see journalctl -u {unit}"))
    return checks


def cuda_requested(settings: Settings) -> list[str]:
    """The settings that need a GPU to work at all (`auto` falls back to the CPU)."""
    asked = [
        f"{section}.device"
        for section in ("transcription", "diarization", "retrieval")
        if getattr(settings, section).device == "cuda"
    ]
    if settings.llm.n_gpu_layers != 0:
        asked.append("llm.n_gpu_layers")
    return asked


def check_gpu_for_workers(
    settings: Settings,
    *,
    nvidia_smi: str | None = None,
    environ: Mapping[str, str] | None = None,
    device_node: Path = Path("/dev/nvidiactl"),
) -> Check:
    """Can the workers, running with this environment and user, use the GPU the settings ask
    for? nvidia-smi lists the GPUs; CUDA_VISIBLE_DEVICES may hide them; the device node must
    be open to this user (run doctor as the service user for the answer that counts)."""
    environ = os.environ if environ is None else environ
    asked = cuda_requested(settings)
    binary = nvidia_smi or shutil.which("nvidia-smi")
    gpus: list[str] = []
    if binary is not None:
        try:
            listed = subprocess.run(
                [binary, "-L"], capture_output=True, text=True, timeout=10, check=True
            ).stdout
            gpus = [g.split(" (UUID")[0] for g in listed.splitlines() if g.startswith("GPU")]
        except (subprocess.SubprocessError, OSError):
            gpus = []
    hidden = environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    if not gpus or hidden:
        why = "CUDA_VISIBLE_DEVICES hides every GPU" if gpus else "no NVIDIA GPU is visible"
        if asked:
            return Check("gpu for workers", "fail", f"{', '.join(asked)} ask for cuda but {why}")
        return Check("gpu for workers", "ok", f"{why}; every stage is set to run on the CPU")
    if not os.access(device_node, os.R_OK | os.W_OK):
        detail = f"{device_node} is not open to this user; add the service user to its group"
        return Check("gpu for workers", "fail" if asked else "warn", detail)
    return Check("gpu for workers", "ok", "; ".join(gpus), {"gpus": gpus, "asked_by": asked})


def configured_models(settings: Settings) -> list[str]:
    """The manifest names the settings point at (voice enrolment always uses Resemblyzer)."""
    names = [settings.transcription.model, settings.retrieval.embedder, settings.llm.model]
    names += ["silero-vad", "resemblyzer-encoder"]
    if settings.diarization.backend == "pyannote":
        names.append(settings.diarization.pyannote_model)
    return list(dict.fromkeys(names))


def check_configured_models(settings: Settings, *, full: bool) -> list[Check]:
    """Production runs what the settings name, whatever profile it came from."""
    try:
        entries = {entry.name: entry for entry in load_manifest()}
    except ModelError as exc:
        return [Check("models", "fail", str(exc))]
    checks = []
    for name in configured_models(settings):
        entry = entries.get(name)
        if entry is None:
            checks.append(Check(f"model: {name}", "fail", "configured but not in the manifest"))
            continue
        result = check_model(entry, settings.resolved_models_dir, full=full)
        status: Status = "ok" if result.status == "ok" else "fail"
        checks.append(Check(f"model: {name}", status, result.detail, {"role": entry.role}))
    return checks


def check_database_role(database: Database) -> Check:
    """The role the appliance connects as must be a lesser one: no superuser (which ignores
    every grant), no table owner (owners can grant themselves anything back), and no way to
    change or remove audit rows."""
    query = text(
        "SELECT current_user, r.rolsuper,"
        " (SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        "  AND tableowner = current_user),"
        " (SELECT array_agg(t) FROM unnest(CAST(:tables AS text[])) AS t"
        "  WHERE to_regclass(t) IS NOT NULL AND (has_table_privilege(t, 'UPDATE')"
        "  OR has_table_privilege(t, 'DELETE') OR has_table_privilege(t, 'TRUNCATE')))"
        " FROM pg_roles r WHERE r.rolname = current_user"
    )
    try:
        with database.engine.connect() as conn:
            found = conn.execute(query, {"tables": list(APPEND_ONLY_TABLES)}).one()
        role, superuser, owned, writable = found
    except SQLAlchemyError as exc:
        return Check("database role", "fail", f"unreachable ({type(exc).__name__})")
    problems = []
    if superuser:
        problems.append("is a superuser")
    if owned:
        problems.append(f"owns {owned} tables")
    if writable:
        problems.append(f"may UPDATE, DELETE or TRUNCATE {', '.join(sorted(writable))}")
    if problems:
        fix = "connect as the app role (appliance init grants it); migrations use admin_url"
        return Check("database role", "fail", f"role {role} {'; '.join(problems)}; {fix}")
    return Check(
        "database role", "ok", f"role {role}: not a superuser, owns no tables, audit append-only"
    )


def _connect(target: tuple[str, int], timeout: float) -> str | None:
    """None when a TCP connection opened (then closed at once; nothing is sent), else why not."""
    try:
        with socket.create_connection(target, timeout=timeout):
            return None
    except TimeoutError:
        return "timed out"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def check_egress(
    targets: Sequence[tuple[str, int]] = EGRESS_TARGETS, *, timeout: float = 2.0
) -> Check:
    """The appliance must not reach the internet: try to open a TCP connection to each target
    (a deliberate attempt, as the deployment asks; no byte is sent) and expect every one to
    fail. A refusal, an unreachable network and a timeout all count as blocked."""
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        results = list(pool.map(lambda t: _connect(t, timeout), targets))
    names = [f"{host}:{port}" for host, port in targets]
    opened = [name for name, why in zip(names, results, strict=True) if why is None]
    if opened:
        return Check("egress", "fail", f"egress is open: connected to {', '.join(opened)}")
    reasons = ", ".join(f"{name} {why}" for name, why in zip(names, results, strict=True))
    return Check("egress", "ok", f"blocked ({reasons})")


def check_backup_age(newest: datetime | None, where: Path, now: datetime | None = None) -> Check:
    if newest is None:
        return Check("backup", "fail", f"no backup in {where}; run: appliance backup")
    age = (now or datetime.now(UTC)) - newest
    detail = f"newest {newest:%Y-%m-%d %H:%M} UTC, {age.total_seconds() / 3600:.1f} h ago"
    if age > BACKUP_FAIL:
        return Check("backup", "fail", f"{detail}; is appliance-backup.timer running?")
    if age > BACKUP_WARN:
        return Check("backup", "warn", f"{detail}; the nightly backup was missed")
    return Check("backup", "ok", detail)


def check_backups(settings: Settings) -> Check:
    from appliance.backup import archive

    newest = archive.latest(settings)
    return check_backup_age(newest.created_at if newest else None, settings.backup_dir)
