"""`vulfix` root command; each sub-command lives in its own module."""

from __future__ import annotations

import click

from vulfix import __version__
from vulfix.cli.accounts_commands import accounts_group
from vulfix.cli.agent_command import agent_command
from vulfix.cli.config_command import config_command
from vulfix.cli.db_commands import db_group
from vulfix.cli.demo_command import demo_command
from vulfix.cli.enroll_token_commands import enroll_token_group
from vulfix.cli.import_command import import_command
from vulfix.cli.keys_commands import keys_group
from vulfix.cli.serve_command import serve_command
from vulfix.cli.simulate_command import simulate_command
from vulfix.settings import SettingsError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vulfix")
def cli() -> None:
    """vulfix: fix host vulnerabilities across a fleet, through the CWP API."""


cli.add_command(serve_command)
cli.add_command(keys_group)
cli.add_command(accounts_group)
cli.add_command(db_group)
cli.add_command(config_command)
cli.add_command(demo_command)
cli.add_command(import_command)
cli.add_command(enroll_token_group)
cli.add_command(simulate_command)
cli.add_command(agent_command)


def main() -> None:
    try:
        cli()
    except SettingsError as exc:
        # Raised before any command could wrap it: still one line, never a traceback.
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
