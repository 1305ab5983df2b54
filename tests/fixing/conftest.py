from collections.abc import AsyncIterator

import pytest

from tests.fixing.engine_harness import Harness, make_harness


@pytest.fixture
async def harness(migrated_db_url: str) -> AsyncIterator[Harness]:
    h = await make_harness(migrated_db_url)
    yield h
    await h.store.engine.dispose()
