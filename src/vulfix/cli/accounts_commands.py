"""`vulfix accounts freeze|unfreeze NAME`: an operator's change freeze on an account."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from vulfix.cli.database_options import database_only_options, settings_from, with_engine
from vulfix.store.change_freeze import ChangeFreezes


@click.group("accounts")
def accounts_group() -> None:
    """Account-wide switches."""


@accounts_group.command("freeze")
@click.argument("account")
@database_only_options
def freeze_command(account: str, db: str | None, config_file: str | None) -> None:
    """Start a change freeze: no new fix task may start (DescribeCanFixVulMachine answers
    OperationDenied, CreateVulFix UnsupportedOperation); running tasks finish."""
    _set(account, True, db, config_file)
    click.echo(f"Account {account} is frozen.")


@accounts_group.command("unfreeze")
@click.argument("account")
@database_only_options
def unfreeze_command(account: str, db: str | None, config_file: str | None) -> None:
    """End a change freeze."""
    _set(account, False, db, config_file)
    click.echo(f"Account {account} is no longer frozen.")


def _set(account: str, frozen: bool, db: str | None, config_file: str | None) -> None:
    settings = settings_from(config_file, db, None)
    with_engine(
        settings,
        lambda engine: ChangeFreezes(engine).set_frozen(account, frozen, datetime.now(UTC)),
    )
