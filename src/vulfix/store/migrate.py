"""Schema migrations, configured in code: the package carries its alembic scripts, no .ini file.

Every process that opens a database may call `upgrade` first. All migrations run in one
transaction that holds the write lock (SQLite) or an advisory lock (PostgreSQL), so two
processes upgrading a fresh database at once apply each revision exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from vulfix.store.database import (
    BEGIN_MODE_OPTION,
    create_blocking_engine,
    sqlite_path,
    sync_url,
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary constant naming vulfix's migration lock among PostgreSQL advisory locks.
PG_MIGRATION_LOCK_ID = 0x76756C666978


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser would read "%" (escaped passwords) as interpolation.
        config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def migration_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that excludes every other migrator until it ends."""
    with engine.connect() as conn:
        conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK_ID})")
            yield conn


def _revision_on(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest revision, creating it if needed."""
    engine = create_blocking_engine(url)
    try:
        with engine.connect() as conn:
            # The common case, already current, needs no write lock.
            if _revision_on(conn) == head_revision():
                return
        config = alembic_config(url)
        with migration_transaction(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database is at; None when it has none (or, for SQLite, no file)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None
    engine = create_blocking_engine(url)
    try:
        with engine.connect() as conn:
            return _revision_on(conn)
    finally:
        engine.dispose()
