"""Audit commands: checkpoint, export, and an offline verify that needs no database."""

from __future__ import annotations

import json
from pathlib import Path

import click

from appliance.audit import service as audit
from appliance.audit.chain import verify_bundle
from appliance.cli import (
    data_dir_option,
    data_session,
    emit,
    json_option,
    main,
    one_line_errors,
)


@main.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log."""


@audit_group.command("checkpoint")
@data_dir_option
@json_option
@one_line_errors
def audit_checkpoint(data_dir: Path | None, as_json: bool) -> None:
    """Sign the current head of the audit chain."""
    with data_session(data_dir) as (settings, session):
        key = audit.load_signing_key(settings.audit_key_path)
        mark = audit.checkpoint(session, key)
    if mark is None:
        raise click.ClickException("the audit log is empty; nothing to sign")
    emit(
        {"id": mark.id, "event_id": mark.event_id, "key_id": mark.key_id},
        as_json,
        f"Checkpoint {mark.id} signs the chain up to entry {mark.event_id}.",
    )


@audit_group.command("export")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@data_dir_option
@json_option
@one_line_errors
def audit_export(out: Path, data_dir: Path | None, as_json: bool) -> None:
    """Write the whole log with its signed checkpoints and public key to FILE."""
    if not out.parent.is_dir():
        raise click.ClickException(f"the folder {out.parent} does not exist")
    with data_session(data_dir) as (settings, session):
        key = audit.load_signing_key(settings.audit_key_path)
        counts = audit.export_signed(session, audit.cli_actor(), key, out)
    human = f"Exported {counts['entries']} entries, {counts['checkpoints']} checkpoints to {out}."
    emit({"id": str(out), **counts}, as_json, human)


@audit_group.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--expect-key", default=None, help="Key id the checkpoints must be signed with.")
@json_option
@one_line_errors
def audit_verify(bundle: Path, expect_key: str | None, as_json: bool) -> None:
    """Verify an exported bundle offline: chain, hashes and checkpoint signatures."""
    try:
        data = json.loads(bundle.read_bytes())
    except (ValueError, UnicodeDecodeError):
        raise click.ClickException(f"{bundle} is not an audit bundle (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != audit.BUNDLE_FORMAT:
        raise click.ClickException(f"{bundle} is not an {audit.BUNDLE_FORMAT} bundle")
    keys = sorted(data.get("public_keys", {}))
    if expect_key is not None and keys != [expect_key]:
        raise click.ClickException(f"the bundle is signed by {', '.join(keys)}, not {expect_key}")
    try:
        verdict = verify_bundle(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise click.ClickException(f"the bundle is malformed ({type(exc).__name__})") from None
    if not verdict.ok:
        raise click.ClickException(f"audit log fails verification: {verdict.reason}")
    emit(
        {
            "ok": True,
            "entries": verdict.entries,
            "checkpoints": verdict.checkpoints,
            "key_ids": keys,
        },
        as_json,
        f"OK: {verdict.entries} entries and {verdict.checkpoints} signed checkpoints verify "
        f"(key {', '.join(keys)}).",
    )
