"""Alembic environment.

`vulfix.store.migrate` runs it with an open connection in `config.attributes["connection"]`;
without one (alembic's own command line) it connects to the `sqlalchemy.url` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from vulfix.store.database import create_blocking_engine
from vulfix.store.migrate import migration_transaction
from vulfix.store.schema import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    # The caller owns the transaction (and, on SQLite, holds the write lock for all of it);
    # SQLite DDL is transactional even though alembic assumes otherwise by default.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transactional_ddl=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    run_online(shared)
else:
    engine = create_blocking_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with migration_transaction(engine) as own:
            run_online(own)
    finally:
        engine.dispose()
