"""The agent API as tests run it: the real routes and registry on SQLite, a fake job source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.routing import Mount

from vulfix.agent_api import agent_routes
from vulfix.agent_api.dispatch import AgentDispatch
from vulfix.agent_api.lane import AgentLane
from vulfix.agent_protocol import AGENT_API_PATH
from vulfix.fixing.agent_port import AgentTimings, HostRegistry, JobNotifier, JobSource
from vulfix.fixing.clock import Clock
from vulfix.store.database import create_engine
from vulfix.store.migrate import upgrade

TIMINGS = AgentTimings(heartbeat_interval=30.0, poll_wait=25.0)


@asynccontextmanager
async def migrated_engine(directory: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite:///{directory / 'vulfix.db'}"
    upgrade(url)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def agent_app(
    registry: HostRegistry,
    jobs: JobSource,
    notifier: JobNotifier,
    clock: Clock,
    timings: AgentTimings = TIMINGS,
    lane: AgentLane | None = None,
) -> AgentDispatch:
    lane = lane or AgentLane(slots=4)
    routes = agent_routes(registry, jobs, notifier, timings, clock, lane)
    # As the server serves them: straight from ASGI, the mount behind answering the rest.
    return AgentDispatch(
        routes, AGENT_API_PATH, Starlette(routes=[Mount(AGENT_API_PATH, routes=routes)])
    )
