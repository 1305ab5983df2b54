"""`vulfix enroll-token`: tokens with which host agents enrol into an account."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from vulfix.cli.database_options import database_only_options, settings_from, with_engine
from vulfix.store.agent_registry import SqlHostRegistry

# Ten years: long-lived tokens for golden images are legitimate, unbounded ones are a typo.
MAX_TTL_HOURS = 24 * 365 * 10


@click.group("enroll-token")
def enroll_token_group() -> None:
    """Create and revoke agent enrolment tokens."""


@enroll_token_group.command("create")
@database_only_options
@click.option("--account", required=True, help="Account the enrolled hosts belong to.")
@click.option(
    "--ttl-hours",
    type=click.FloatRange(min=0, min_open=True, max=MAX_TTL_HOURS),
    default=24.0,
    show_default=True,
    help="How long the token can enrol hosts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create_command(
    db: str | None, config_file: str | None, account: str, ttl_hours: float, as_json: bool
) -> None:
    """Create a token that enrols hosts into ACCOUNT (shown only this once)."""
    settings = settings_from(config_file, db, None)
    now = datetime.now(UTC)
    ttl = timedelta(hours=ttl_hours)
    token = with_engine(
        settings,
        lambda engine: SqlHostRegistry(engine).create_enrollment_token(account, ttl, now),
    )
    expires_at = (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
    if as_json:
        click.echo(json.dumps({"Token": token, "Account": account, "ExpiresAt": expires_at}))
        return
    click.echo(f"Token:   {token}")
    click.echo(f"Account: {account}")
    click.echo(f"Expires: {expires_at}")
    click.echo("Store the token now: it will not be shown again.")


@enroll_token_group.command("revoke")
@click.argument("token")
@database_only_options
def revoke_command(token: str, db: str | None, config_file: str | None) -> None:
    """Stop TOKEN enrolling hosts (hosts it already enrolled keep working)."""
    settings = settings_from(config_file, db, None)
    now = datetime.now(UTC)
    known = with_engine(
        settings, lambda engine: SqlHostRegistry(engine).revoke_enrollment_token(token, now)
    )
    if not known:
        raise click.ClickException("no such enrolment token")
    click.echo("enrolment token revoked")
