"""`vulfix keys`: accounts' API keys (SecretId/SecretKey pairs)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import click
from rich.console import Console
from rich.table import Table

from vulfix.cli.database_options import database_options, settings_from, with_key_store
from vulfix.settings import Settings
from vulfix.store.api_keys import ApiKeyStore, KeyInfo, NewKey


@click.group("keys")
def keys_group() -> None:
    """Create and manage API keys."""


@keys_group.command("create")
@database_options
@click.option("--account", required=True, help="Account name; created on first use.")
@click.option("--read-only", is_flag=True, help="The key may call Describe* actions only.")
@click.option(
    "--allow-action",
    "allowed_actions",
    multiple=True,
    metavar="ACTION",
    help="Allow only this action (repeatable); any other answers UnauthorizedOperation.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_command(
    db: str | None,
    config_file: str | None,
    master_key_file: str | None,
    account: str,
    read_only: bool,
    allowed_actions: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create a key for ACCOUNT and print its secret (shown only this once)."""
    settings = settings_from(config_file, db, master_key_file)
    allowed = list(allowed_actions) or None
    key: NewKey = with_key_store(
        settings, lambda store: store.create_key(account, read_only, allowed)
    )
    if as_json:
        fields = {
            "Account": key.account,
            "AppId": key.app_id,
            "SecretId": key.secret_id,
            "SecretKey": key.secret_key,
        }
        click.echo(json.dumps(fields))
        return
    click.echo(f"Account:   {key.account}")
    click.echo(f"AppId:     {key.app_id}")
    click.echo(f"SecretId:  {key.secret_id}")
    click.echo(f"SecretKey: {key.secret_key}")
    click.echo(f"Access:    {'read-only' if read_only else 'read-write'}")
    click.echo("Store the SecretKey now: it will not be shown again.")


def _created_at(info: KeyInfo) -> str:
    return info.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")


@keys_group.command("list")
@database_options
@click.option("--account", default=None, help="Only this account's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_command(
    db: str | None,
    config_file: str | None,
    master_key_file: str | None,
    account: str | None,
    as_json: bool,
) -> None:
    """List keys (never their secrets)."""
    settings = settings_from(config_file, db, master_key_file)
    keys = with_key_store(settings, lambda store: store.list_keys(account))
    if as_json:
        rows = [
            {
                "Account": info.account,
                "AppId": info.app_id,
                "SecretId": info.secret_id,
                "ReadOnly": info.read_only,
                "Status": info.status,
                "CreatedAt": _created_at(info),
            }
            for info in keys
        ]
        click.echo(json.dumps(rows))
        return
    if not keys:
        click.echo("No API keys." if account is None else f"No API keys for account {account}.")
        return
    table = Table("Account", "AppId", "SecretId", "Access", "Status", "Created (UTC)")
    for info in keys:
        access = "read-only" if info.read_only else "read-write"
        table.add_row(
            info.account, str(info.app_id), info.secret_id, access, info.status, _created_at(info)
        )
    console = Console()
    # Never truncate a SecretId: widen past a narrow (or absent) terminal instead.
    natural_width = console.measure(table, options=console.options.update_width(1000)).maximum
    if natural_width > console.width:
        console = Console(width=natural_width)
    console.print(table)


def _change_key(
    settings: Settings,
    secret_id: str,
    operation: Callable[[ApiKeyStore], Awaitable[bool]],
    done: str,
) -> None:
    """Runs a change that reports whether the key existed; an unknown key is an error."""
    if not with_key_store(settings, operation):
        raise click.ClickException(f"no API key with SecretId {secret_id}")
    click.echo(f"{secret_id} {done}")


@keys_group.command("disable")
@click.argument("secret_id")
@database_options
def disable_command(
    secret_id: str, db: str | None, config_file: str | None, master_key_file: str | None
) -> None:
    """Stop SECRET_ID from authenticating (the server notices within about a second)."""
    settings = settings_from(config_file, db, master_key_file)
    _change_key(settings, secret_id, lambda store: store.set_enabled(secret_id, False), "disabled")


@keys_group.command("enable")
@click.argument("secret_id")
@database_options
def enable_command(
    secret_id: str, db: str | None, config_file: str | None, master_key_file: str | None
) -> None:
    """Let a disabled SECRET_ID authenticate again."""
    settings = settings_from(config_file, db, master_key_file)
    _change_key(settings, secret_id, lambda store: store.set_enabled(secret_id, True), "enabled")


@keys_group.command("delete")
@click.argument("secret_id")
@database_options
def delete_command(
    secret_id: str, db: str | None, config_file: str | None, master_key_file: str | None
) -> None:
    """Delete SECRET_ID for good."""
    settings = settings_from(config_file, db, master_key_file)
    _change_key(settings, secret_id, lambda store: store.delete_key(secret_id), "deleted")
