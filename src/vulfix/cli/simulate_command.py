"""`vulfix simulate`: a fleet of simulated agents, one per host of an inventory file."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import sys
from pathlib import Path

import click

from vulfix import fast_loop
from vulfix.agent.simulated_hosts import InventoryHost, load_inventory
from vulfix.agent.simulation import FleetOptions, FleetSummary, fleet_http_client, run_fleet
from vulfix.gc_tuning import tune_for_many_connections

# Descriptors beyond one socket per agent: spare pool connections, stdio, the event loop.
SPARE_DESCRIPTORS = 256


def _allow_open_files(needed: int) -> None:
    """Raises the soft open-files limit towards `needed` (one socket per long-polling agent)."""
    try:
        import resource
    except ImportError:  # not on Unix: nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _simulate(
    server: str, ca_file: str | None, token: str, hosts: list[InventoryHost], options: FleetOptions
) -> FleetSummary:
    stop = asyncio.Event()

    def stopping() -> None:
        if not stop.is_set():  # a report may be waiting for a next job: say why this takes time
            click.echo(
                f"Stopping: reports on their way get up to {options.stop_grace:g} s to be "
                "acknowledged.",
                err=True,
            )
        stop.set()

    loop = asyncio.get_running_loop()
    if sys.platform != "win32":  # Windows event loops take no signal handlers
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping)
    http = fleet_http_client(server, len(hosts), ca_file=ca_file)
    try:
        return await run_fleet(hosts, http, token, options, stop=stop)
    finally:
        await http.aclose()


def summary_lines(summary: FleetSummary) -> list[str]:
    lines = [f"Hosts enrolled: {summary.enrolled} (refused: {summary.enrol_refused})"]
    lines.append(f"Jobs reported: {sum(summary.jobs.values())}")
    for (kind, outcome), count in sorted(summary.jobs.items()):
        lines.append(f"  {kind:<16} {outcome:<12} {count:>7}")
    lines.append(
        f"Reports already applied: {summary.duplicates}, refused: {summary.refused}, "
        f"not delivered: {summary.unreported}; server unavailable: {summary.unavailable} times"
    )
    return lines


@click.command("simulate")
@click.option("--server", required=True, metavar="URL", help="The vulfix server's base URL.")
@click.option("--enroll-token", required=True, help="An enrolment token (vulfix enroll-token).")
@click.option(
    "--inventory",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Import document whose hosts become simulated agents.",
)
@click.option("--fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--snapshot-fail-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop taking jobs after this many seconds (default: until interrupted).",
)
@click.option("--seed", type=int, default=None, help="Makes outcomes reproducible.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Simulated jobs run this many times faster.",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Heartbeat at least this often (seconds).",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="CA certificate(s) to trust for an https server.",
)
def simulate_command(
    server: str,
    enroll_token: str,
    inventory: Path,
    fail_rate: float,
    snapshot_fail_rate: float,
    duration: float | None,
    seed: int | None,
    speed: float,
    heartbeat_interval: float | None,
    ca_file: str | None,
) -> None:
    """Run one simulated agent per host of INVENTORY against a server, then summarise."""
    try:
        hosts = load_inventory(inventory)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not hosts:
        raise click.ClickException(f"{inventory} lists no hosts")
    seed = seed if seed is not None else secrets.randbits(32)
    options = FleetOptions(
        fail_rate=fail_rate,
        snapshot_fail_rate=snapshot_fail_rate,
        speed=speed,
        duration=duration,
        seed=seed,
        heartbeat_interval=heartbeat_interval,
    )
    _allow_open_files(len(hosts) + SPARE_DESCRIPTORS)
    click.echo(f"Simulating {len(hosts)} hosts against {server} (seed {seed})", err=True)
    tune_for_many_connections()
    summary = fast_loop.run(_simulate(server, ca_file, enroll_token, hosts, options))
    for line in summary_lines(summary):
        click.echo(line)
