from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from tests.agent_api.fake_jobs import FakeJobSource
from tests.agent_api.harness import agent_app, migrated_engine
from vulfix.agent_api import MemoryJobNotifier
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated_engine(tmp_path) as engine:
        yield engine


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(engine: AsyncEngine) -> SqlHostRegistry:
    return SqlHostRegistry(engine, touch_interval=timedelta(0))


@pytest.fixture
def jobs() -> FakeJobSource:
    return FakeJobSource()


@pytest.fixture
def notifier() -> MemoryJobNotifier:
    return MemoryJobNotifier()


@pytest.fixture
def app(
    registry: SqlHostRegistry, jobs: FakeJobSource, notifier: MemoryJobNotifier, clock: ManualClock
) -> Starlette:
    return agent_app(registry, jobs, notifier, clock)


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vulfix.test") as client:
        yield client
