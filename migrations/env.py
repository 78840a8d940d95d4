"""Alembic environment. The engine comes from the appliance (`appliance.db.alembic_config`),
so migrations run against exactly the database the settings name, embedded or not."""

from __future__ import annotations

from alembic import context

from appliance.db import include_object, tables_metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    raise RuntimeError("run migrations through `appliance init` (it opens the database)")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=tables_metadata(),
        include_object=include_object,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
