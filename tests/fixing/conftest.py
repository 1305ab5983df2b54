from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixing.engine_harness import Harness, make_harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = await make_harness(tmp_path)
    yield h
    await h.store.engine.dispose()
