from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cwp.inventory_setup import NOW, Seed
from vulfix.fixing.clock import ManualClock
from vulfix.inventory.validation import load_inventory
from vulfix.store.database import create_engine
from vulfix.store.inventory_repository import InventoryStore
from vulfix.store.migrate import upgrade


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite:///{tmp_path / 'vulfix.db'}"
    upgrade(url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def seed(engine: AsyncEngine) -> Seed:
    """Imports a document into the named account; returns the account id."""

    async def run(account: str, document: dict[str, Any]) -> int:
        inventory = load_inventory(json.dumps(document).encode())
        summary = await InventoryStore(engine).import_document(account, inventory, NOW)
        return summary.account_id

    return run
