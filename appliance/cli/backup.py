"""Backup commands: `appliance backup [--to DIR]`, `appliance backup verify ARCHIVE`,
`appliance restore ARCHIVE [--yes]`. Output holds paths, counts and times, never patient data."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.cli import data_dir_option, emit, json_option, main, one_line_errors, settings_for
from appliance.instance import require_initialised

ARCHIVE = click.Path(path_type=Path, dir_okay=False, exists=True)


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {plural or noun + 's'}"


def _size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"


@main.group("backup", invoke_without_command=True)
@click.option(
    "--to",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for the archive (default: [backup] dir, or <data_dir>/backups).",
)
@data_dir_option
@json_option
@click.pass_context
@one_line_errors
def backup_group(ctx: click.Context, to: Path | None, data_dir: Path | None, as_json: bool) -> None:
    """Write one backup archive: database dump, encrypted recordings, config, manifest.

    The key directory is never in an archive; back it up separately (see the README)."""
    if ctx.invoked_subcommand is not None:
        return
    from appliance.backup.create import create_backup

    settings = settings_for(data_dir)
    require_initialised(settings)
    result = create_backup(settings, to)
    pruned = f"; {len(result.pruned)} older archive(s) pruned" if result.pruned else ""
    emit(
        {
            "id": str(result.path),
            "path": str(result.path),
            "created_at": result.created_at.isoformat(),
            "size_bytes": result.size_bytes,
            "seconds": result.seconds,
            "tables": result.tables,
            "rows": result.rows,
            "files": result.files,
            "pruned": list(result.pruned),
        },
        as_json,
        f"Backup written: {result.path} ({_size(result.size_bytes)}; "
        f"{_n(result.tables, 'table')}, {_n(result.rows, 'row')}, {_n(result.files, 'file')}) "
        f"in {result.seconds:.1f} s{pruned}.",
    )


@backup_group.command("verify")
@click.argument("archive", type=ARCHIVE)
@json_option
@one_line_errors
def backup_verify(archive: Path, as_json: bool) -> None:
    """Check every member's sha256, restore the dump into a scratch PostgreSQL, compare row
    counts with the manifest and verify the audit chain there."""
    from appliance.backup.verify import verify_archive

    result = verify_archive(archive)
    emit(
        {
            "ok": True,
            "archive": str(result.archive),
            "created_at": result.created_at,
            "members": result.members,
            "tables": result.tables,
            "rows": result.rows,
            "audit_entries": result.audit_entries,
            "audit_checkpoints": result.audit_checkpoints,
            "seconds": result.seconds,
        },
        as_json,
        f"OK: {result.archive.name} (made {result.created_at}): "
        f"sha256 of {_n(result.members, 'member')} checked; {_n(result.tables, 'table')} "
        f"restored with the manifest's row counts ({_n(result.rows, 'row')}); audit chain of "
        f"{_n(result.audit_entries, 'entry', 'entries')} and "
        f"{_n(result.audit_checkpoints, 'signed checkpoint')} "
        f"verifies ({result.seconds:.1f} s).",
    )


@main.command("restore")
@click.argument("archive", type=ARCHIVE)
@click.option("--yes", is_flag=True, help="Confirm replacing a database that holds data.")
@data_dir_option
@json_option
@one_line_errors
def restore(archive: Path, yes: bool, data_dir: Path | None, as_json: bool) -> None:
    """Restore the database and recordings from ARCHIVE, then erase again every patient in
    the erasure journal. Stop the appliance's services first."""
    from appliance.backup.restore import restore_archive

    result = restore_archive(settings_for(data_dir), archive, yes=yes)
    warning = (
        f" WARNING: {result.patients_without_key} patient(s) have no data key in the key "
        "store; restore the key directory from its backup."
        if result.patients_without_key
        else ""
    )
    emit(
        {
            "id": str(result.archive),
            "archive": str(result.archive),
            "created_at": result.created_at,
            "tables": result.tables,
            "rows": result.rows,
            "files": result.files,
            "revision": result.revision,
            "erasures_replayed": result.erasures_replayed,
            "erasures_already_applied": result.erasures_already_applied,
            "patients_without_key": result.patients_without_key,
            "seconds": result.seconds,
        },
        as_json,
        f"Restored {result.archive.name} (made {result.created_at}): "
        f"{_n(result.tables, 'table')}, {_n(result.rows, 'row')}, {_n(result.files, 'file')}; "
        f"schema at {result.revision}; erasures "
        f"re-applied: {result.erasures_replayed} (already gone: "
        f"{result.erasures_already_applied}) in {result.seconds:.1f} s.{warning}",
    )


@backup_group.command("drill")
@click.argument("archive", type=ARCHIVE)
@data_dir_option
@json_option
@one_line_errors
def backup_drill(archive: Path, data_dir: Path | None, as_json: bool) -> None:
    """Rehearse a restore of ARCHIVE with this appliance's keys and erasure journal into a
    scratch appliance (its own folder and PostgreSQL), check every recording decrypts, erased
    patients stay erased and the audit chain verifies, then remove it. Production is only
    read; exit 1 on any failure."""
    from appliance.backup.drill import drill_archive

    result = drill_archive(settings_for(data_dir), archive)
    emit(
        {
            "ok": True,
            "archive": str(result.archive),
            "created_at": result.created_at,
            "tables": result.tables,
            "rows": result.rows,
            "recordings_decrypted": result.recordings_decrypted,
            "erasures_replayed": result.erasures_replayed,
            "erasures_already_applied": result.erasures_already_applied,
            "audit_entries": result.audit_entries,
            "audit_checkpoints": result.audit_checkpoints,
            "seconds": result.seconds,
        },
        as_json,
        f"Drill OK: {result.archive.name} (made {result.created_at}) restored beside this "
        f"appliance: {_n(result.tables, 'table')}, {_n(result.rows, 'row')}; "
        f"{_n(result.recordings_decrypted, 'recording')} decrypted with the key store; "
        f"erasures re-applied: {result.erasures_replayed}; audit chain of "
        f"{_n(result.audit_entries, 'entry', 'entries')} verifies ({result.seconds:.1f} s).",
    )
