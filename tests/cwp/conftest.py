from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cwp.inventory_setup import NOW, Seed
from vulfix.fixing.clock import ManualClock
from vulfix.inventory.validation import load_inventory
from vulfix.store.database import create_engine
from vulfix.store.inventory_repository import InventoryStore


@pytest.fixture
async def engine(migrated_db_url: str) -> AsyncIterator[AsyncEngine]:
    """The inventory readers' database, SQLite and PostgreSQL in turn."""
    engine = create_engine(migrated_db_url)
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
