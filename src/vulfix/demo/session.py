"""The demo in one process: the embedded server, the demo fleet imported and enrolled as
simulated agents (a few fail on purpose), one fix task over every fixable finding, and a
live view of it until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from rich.console import Console
from rich.live import Live

from vulfix.agent.simulated_hosts import parse_inventory
from vulfix.agent.simulation import FleetOptions, fleet_http_client, run_fleet
from vulfix.app import Application, build
from vulfix.demo.fleet import demo_inventory
from vulfix.demo.live_view import render, summary_line
from vulfix.fixing.planning import FixItemRequest, FixRequest
from vulfix.fixing.services import create_fix_task
from vulfix.fixing.task_status import TaskLookup, task_status
from vulfix.fixing.task_view import TaskFigures
from vulfix.inventory.can_fix import fixable_hosts
from vulfix.inventory.validation import load_inventory
from vulfix.serving import draining_server
from vulfix.settings import Settings
from vulfix.store.accounts import account_named
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.database import write_transaction
from vulfix.store.fix_task_reader import SqlTaskReader
from vulfix.store.inventory_queries import SqlInventoryReader
from vulfix.store.inventory_repository import InventoryStore

DEMO_ACCOUNT = "demo"
ONLINE_WAIT = 30.0


@dataclass(frozen=True)
class DemoOptions:
    create_task: bool = True
    live_view: bool = True
    speed: float = 2.0
    fail_rate: float = 0.08
    snapshot_fail_rate: float = 0.05


async def run_demo(
    settings: Settings, hints: Callable[[int], str], options: DemoOptions, console: Console
) -> None:
    # The simulated agents' HTTP client would log every request into the server log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = build(settings)
    server = draining_server(app, settings)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # the port was taken, say: uvicorn has logged why
            return
        await asyncio.sleep(0.05)
    document = json.dumps(demo_inventory()).encode()
    now = app.engine_loop.clock.now()
    await InventoryStore(app.engine).import_document(DEMO_ACCOUNT, load_inventory(document), now)
    token = await SqlHostRegistry(app.engine).create_enrollment_token(
        DEMO_ACCOUNT, timedelta(days=1), now
    )
    hosts = parse_inventory(document)
    http = fleet_http_client(f"http://127.0.0.1:{settings.port}", len(hosts))
    stop = asyncio.Event()
    fleet_options = FleetOptions(
        fail_rate=options.fail_rate,
        snapshot_fail_rate=options.snapshot_fail_rate,
        speed=options.speed,
        seed=7,
    )
    fleet = asyncio.create_task(run_fleet(hosts, http, token, fleet_options, stop=stop))
    try:
        fix_id = await _start_task(app) if options.create_task else None
        if fix_id is None:
            console.print(
                "The fleet is enrolled; no fix task was created (--no-task, or nothing is left to "
                "fix: delete the state directory to start over). Serving until Ctrl-C."
            )
            await serving
        else:
            message = f"Created fix task {fix_id}. Call the API while it runs:\n\n{hints(fix_id)}\n"
            console.print(message, soft_wrap=True, markup=False)  # paste-ready: never wrapped
            short = f"tccli cwp DescribeVulFixStatus --FixId {fix_id} ... (the lines above)"
            await _watch(app, fix_id, short, options, console, serving)
    finally:
        stop.set()
        server.should_exit = True
        server.release()
        with contextlib.suppress(asyncio.CancelledError):
            await fleet
        await http.aclose()
        await serving


async def _start_task(app: Application) -> int | None:
    """Waits for the agents to come online, then fixes every fixable finding at once."""
    reader = SqlInventoryReader(app.engine)
    account_id = await _account_id(app)
    vulnerabilities = demo_inventory()["vulnerabilities"]
    vul_ids = [v["VulId"] for v in vulnerabilities]
    first_kb = {v["VulId"]: v["Kbs"][0]["KbId"] for v in vulnerabilities if v.get("Kbs")}
    offline_after = timedelta(seconds=app.settings.offline_after)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ONLINE_WAIT
    while True:
        found = await fixable_hosts(
            reader, account_id, vul_ids, None, app.engine_loop.clock.now(), offline_after
        )
        states = [h.is_support_auto_fix for entry in found for h in entry.hosts]
        if states and (all(s != 2 for s in states) or loop.time() > deadline):
            break
        await asyncio.sleep(0.5)
    items = []
    for entry in found:
        quuids = tuple(h.host.quuid for h in entry.hosts if h.is_support_auto_fix == 1)
        vul_id = entry.vulnerability.vul_id
        if quuids:
            items.append(FixItemRequest(vul_id, first_kb.get(vul_id, 0), 0, quuids))
    if not items:
        return None
    request = FixRequest(items=tuple(items), save_days=7, snapshot_name="vulfix-demo")
    return await create_fix_task(
        app.fixing, account_id, request, app.engine_loop.clock.now(), "en-US"
    )


async def _account_id(app: Application) -> int:
    async with write_transaction(app.engine) as conn:
        return (await account_named(conn, DEMO_ACCOUNT)).id


async def _watch(
    app: Application,
    fix_id: int,
    hints: str,
    options: DemoOptions,
    console: Console,
    serving: asyncio.Task[None],
) -> None:
    lookup = TaskLookup(fix_id=fix_id)
    account_id = await _account_id(app)
    tasks = SqlTaskReader(app.engine)

    async def status_now() -> TaskFigures:
        return await task_status(tasks, account_id, lookup, app.engine_loop.clock.now())

    if not options.live_view:
        last = ""
        while not serving.done():
            line = summary_line(await status_now())
            if line != last:
                console.print(line, soft_wrap=True)
                last = line
            await asyncio.sleep(1.0)
        return
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while not serving.done():
            live.update(render(await status_now(), hints))
            await asyncio.sleep(0.5)
