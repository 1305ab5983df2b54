"""`vulfix config`: the effective settings, secrets redacted."""

from __future__ import annotations

import click
import msgspec

from vulfix.settings import load_settings, redacted


@click.command("config")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML settings file.",
)
def config_command(config_file: str | None) -> None:
    """Print the effective settings (defaults < file < VULFIX_* environment)."""
    settings = load_settings(config_file)
    click.echo(msgspec.json.format(msgspec.json.encode(redacted(settings)), indent=2).decode())
