"""What a backup records about its database and what verification compares: row counts per
table, and the audit hash chain checked with the same code as `appliance audit verify`."""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import Connection, Engine, text

from appliance.audit.chain import Verdict, key_id, verify_bundle


def table_names(conn: Connection) -> list[str]:
    """The appliance's tables (schema public, extension tables left out)."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT EXISTS ("
            "  SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            "  AND d.objid = c.oid AND d.deptype = 'e') ORDER BY c.relname"
        )
    )
    return [str(name) for (name,) in rows]


def table_counts(conn: Connection) -> dict[str, int]:
    """Exact row counts, read in the caller's transaction (and so in its snapshot)."""
    counts = {}
    for name in table_names(conn):
        quoted = '"' + name.replace('"', '""') + '"'
        counts[name] = int(conn.execute(text(f"SELECT count(*) FROM public.{quoted}")).scalar_one())  # noqa: S608
    return counts


def count_differences(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    """Human descriptions of every table whose count differs (names and numbers only)."""
    found = []
    for name in sorted(set(expected) | set(actual)):
        want, have = expected.get(name), actual.get(name)
        if want != have:
            found.append(
                f"{name}: {have if have is not None else 'missing'} rows, "
                f"manifest says {want if want is not None else 'no such table'}"
            )
    return found


def audit_public_keys(audit_key_path: Any) -> dict[str, str]:
    """{key id: raw public key, base64} of the checkpoint signing key, when it can be read.
    Only the public half ever goes into an archive."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from appliance.audit.service import load_signing_key
    from appliance.settings import SettingsError

    try:
        public = load_signing_key(audit_key_path).public_key()
    except (SettingsError, OSError, ValueError):
        return {}
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {key_id(public): base64.b64encode(raw).decode()}


def verify_audit(engine: Engine, public_keys: dict[str, str]) -> Verdict:
    """Rebuild the export bundle from a (restored) database and verify it like an export."""
    from sqlmodel import Session

    from appliance.audit.service import BUNDLE_FORMAT, chain_records

    with Session(engine) as session:
        entries, marks = chain_records(session)
    return verify_bundle(
        {
            "format": BUNDLE_FORMAT,
            "public_keys": public_keys,
            "entries": entries,
            "checkpoints": marks,
        }
    )
