"""Database roles: migrations run as the owner, the appliance runs as a lesser role.

The app role gets SELECT/INSERT/UPDATE/DELETE on the appliance's tables, except the audit
tables, where it gets only SELECT and INSERT. `appliance init` re-applies the grants after every
migration, so tables added later are covered too.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

APPEND_ONLY_TABLES = ("audit_events", "audit_checkpoints")
# Ledgers whose rows are never changed, but which erasure deletes with the patient.
NO_UPDATE_TABLES = ("consent_events",)


def ensure_login_role(admin: Engine, role: str) -> None:
    """Create the app's login role on the embedded server (socket trust auth, no password)."""
    with admin.begin() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
        ).first()
        if not exists:
            conn.execute(
                text(f'CREATE ROLE "{_ident(role)}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
            )


def grant_app_privileges(admin: Engine, role: str) -> bool:
    """Grant the app role what it needs and nothing more. False when the role owns the tables
    (a single-role setup: then only the trigger protects the audit log)."""
    role = _ident(role)
    with admin.begin() as conn:
        owner = conn.execute(text("SELECT current_user")).scalar_one()
        if owner == role:
            return False
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        conn.execute(text(f'GRANT CONNECT ON DATABASE "{_ident(database)}" TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(
            text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
        )
        conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
        for table in APPEND_ONLY_TABLES:
            conn.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM "{role}"'))
        for table in NO_UPDATE_TABLES:
            conn.execute(text(f'REVOKE UPDATE, TRUNCATE ON {table} FROM "{role}"'))
    return True


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid role or database name {name!r}")
    return name
