"""What the `keys` and `db` commands share: database options, settings, and error reporting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.fixing.errors import StorageUnavailable
from vulfix.settings import Settings, load_settings
from vulfix.store.accounts import UnknownAccountError
from vulfix.store.api_keys import ApiKeyStore, InvalidAccountNameError
from vulfix.store.database import UnsupportedDatabaseError, create_engine
from vulfix.store.migrate import upgrade
from vulfix.store.secret_cipher import MasterKeyError, SecretCipher, load_master_key

P = ParamSpec("P")
R = TypeVar("R")

# Failures with a message worth showing as is; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (
    SQLAlchemyError,
    OSError,
    MasterKeyError,
    UnsupportedDatabaseError,
    InvalidAccountNameError,
    UnknownAccountError,
    StorageUnavailable,
)


def database_options(command: Callable[P, R]) -> Callable[P, R]:
    """Adds --db, --config and --master-key-file."""
    command = click.option(
        "--master-key-file",
        type=click.Path(dir_okay=False),
        help="File holding the key that encrypts API secrets (created if missing).",
    )(command)
    return database_only_options(command)


def database_only_options(command: Callable[P, R]) -> Callable[P, R]:
    """Adds --db and --config, for commands that never touch API secrets."""
    command = click.option(
        "--config",
        "config_file",
        type=click.Path(exists=True, dir_okay=False),
        help="TOML settings file (default: $VULFIX_CONFIG).",
    )(command)
    return click.option(
        "--db",
        metavar="URL",
        help="Database URL, sqlite:///PATH or postgresql://... (default: $VULFIX_DB or the "
        "SQLite file in the user data directory).",
    )(command)


def settings_from(config_file: str | None, db: str | None, master_key_file: str | None) -> Settings:
    try:
        return load_settings(config_file, db=db, master_key_file=master_key_file)
    except (OSError, ValueError) as exc:  # unreadable file, bad TOML, failed validation
        raise click.ClickException(f"invalid settings: {exc}") from exc


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turns expected failures into a one-line message on stderr and exit code 1."""
    try:
        yield
    except EXPECTED_ERRORS as exc:
        # SQLAlchemy appends the SQL and a help link on further lines; the first says it all.
        raise click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc


def _on_fresh_engine(url: str, operation: Callable[[AsyncEngine], Awaitable[R]]) -> R:
    async def run() -> R:
        engine = create_engine(url)
        try:
            return await operation(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def with_engine(settings: Settings, operation: Callable[[AsyncEngine], Awaitable[R]]) -> R:
    """Migrates the database, then runs `operation` on a fresh engine, disposed afterwards."""
    with reported_errors():
        upgrade(settings.db)
        return _on_fresh_engine(settings.db, operation)


def with_key_store(settings: Settings, operation: Callable[[ApiKeyStore], Awaitable[R]]) -> R:
    """Migrates the database, then runs `operation` against a key store on a fresh engine."""
    with reported_errors():
        upgrade(settings.db)
        cipher = SecretCipher(load_master_key(settings))
        return _on_fresh_engine(settings.db, lambda engine: operation(ApiKeyStore(engine, cipher)))
