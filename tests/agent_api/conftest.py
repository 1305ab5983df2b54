from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from tests.agent_api.fake_jobs import FakeJobSource
from tests.agent_api.harness import agent_app
from vulfix.agent_api import MemoryJobNotifier
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.database import create_engine


@pytest.fixture
async def engine(migrated_db_url: str) -> AsyncIterator[AsyncEngine]:
    """The registry's database, SQLite and PostgreSQL in turn."""
    engine = create_engine(migrated_db_url)
    yield engine
    await engine.dispose()


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
