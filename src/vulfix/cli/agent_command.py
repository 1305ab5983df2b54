"""`vulfix agent`: the process that runs on a host, fixes it, and reports to the server."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from vulfix.agent.client import AgentClient
from vulfix.agent.commands import CommandRunner
from vulfix.agent.config import AgentConfig, ConfigError, load_config
from vulfix.agent.daemon import EnrollmentFailed, HostAgent
from vulfix.agent.host_facts import os_family
from vulfix.agent.state_files import IdentityStore, Journal, StateFileError, prepare_state_dir
from vulfix.agent.work import HostWork

log = logging.getLogger("vulfix.agent")


async def _serve(config: AgentConfig) -> None:
    state_dir = Path(config.state_dir)
    prepare_state_dir(state_dir)
    family = os_family(config)
    work = HostWork(
        config, CommandRunner(dry_run=config.dry_run, timeout=config.command_timeout), family
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if sys.platform != "win32":  # Windows event loops take no signal handlers
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    if config.dry_run:
        log.warning("dry run: commands that would change this host are logged, not run")
    async with AgentClient.connect(config.server, ca_file=config.ca_file) as client:
        agent = HostAgent(
            config,
            client,
            work,
            os_family=family,
            identities=IdentityStore(state_dir),
            journal=Journal(state_dir),
        )
        await agent.run(stop)
    log.info("vulfix agent stopped")


@click.command("agent")
@click.option("--server", metavar="URL", help="The vulfix server's base URL.")
@click.option("--enroll-token", help="An enrolment token (vulfix enroll-token); needed once.")
@click.option("--quuid", help="Enrol as this imported host (default: the server assigns one).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="agent.toml (see docs/agent.md); flags override it.",
)
@click.option("--state-dir", type=click.Path(file_okay=False), help="Identity and journal.")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Trust this CA bundle for an https server (default: certifi's bundle).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    default=None,
    help="Log what would run, change nothing, report success.",
)
@click.option("--log-level", default="INFO", show_default=True)
def agent_command(
    server: str | None,
    enroll_token: str | None,
    quuid: str | None,
    config_path: Path | None,
    state_dir: str | None,
    ca_file: str | None,
    dry_run: bool | None,
    log_level: str,
) -> None:
    """Run the host agent: enrol once, then take and run fix jobs until stopped."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # A line per long-poll says nothing the agent's own lines do not.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    overrides = {
        "server": server,
        "enroll_token": enroll_token,
        "quuid": quuid,
        "state_dir": state_dir,
        "ca_file": ca_file,
        "dry_run": dry_run,
    }
    try:
        config = load_config(config_path, overrides)
        asyncio.run(_serve(config))
    except (ConfigError, StateFileError, EnrollmentFailed) as exc:
        raise click.ClickException(str(exc)) from exc
    except PermissionError as exc:
        raise click.ClickException(f"{exc.filename}: permission denied") from exc
