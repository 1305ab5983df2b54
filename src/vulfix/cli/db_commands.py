"""`vulfix db`: schema migrations."""

from __future__ import annotations

import click

from vulfix.cli.database_options import database_options, reported_errors, settings_from
from vulfix.store.database import display_url
from vulfix.store.migrate import current_revision, upgrade


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


@db_group.command("upgrade")
@database_options
def upgrade_command(db: str | None, config_file: str | None, master_key_file: str | None) -> None:
    """Apply all pending migrations (creating the database if needed)."""
    settings = settings_from(config_file, db, master_key_file)
    with reported_errors():
        upgrade(settings.db)
        revision = current_revision(settings.db)
        click.echo(f"{display_url(settings.db)} is at revision {revision}")


@db_group.command("current")
@database_options
def current_command(db: str | None, config_file: str | None, master_key_file: str | None) -> None:
    """Print the database's schema revision ("none" before the first upgrade)."""
    settings = settings_from(config_file, db, master_key_file)
    with reported_errors():
        click.echo(current_revision(settings.db) or "none")
