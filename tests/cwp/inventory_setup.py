"""Helpers for action tests over an imported inventory (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.store.inventory_tables import hosts, machine_snapshots
from vulfix.store.tables import to_stored
from vulfix.tcapi import Caller

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# seed(account_name, document) -> account id
Seed = Callable[[str, dict[str, Any]], Awaitable[int]]


async def set_last_seen(engine: AsyncEngine, quuid: str, seen: datetime | None) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(hosts)
            .where(hosts.c.quuid == quuid)
            .values(last_seen_at=None if seen is None else to_stored(seen))
        )


def caller_of(account_id: int) -> Caller:
    return Caller(
        account_id=account_id,
        account_name="acme",
        app_id=1_250_000_001,
        secret_id="AKIDtest",
        read_only=True,
        request_id="req-1",
        language="en-US",
        region="ap-guangzhou",
    )


class Snapshots:
    """Inserts machine snapshot rows the way the engine records them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.made = 0

    async def add(
        self, quuid: str, created_at: datetime, deleted_at: datetime | None = None
    ) -> str:
        self.made += 1
        snapshot_id = f"snap-{self.made:08d}"
        async with self.engine.begin() as conn:
            host = (
                await conn.execute(
                    select(hosts.c.id, hosts.c.account_id).where(hosts.c.quuid == quuid)
                )
            ).one()
            await conn.execute(
                insert(machine_snapshots).values(
                    account_id=host.account_id,
                    host_id=host.id,
                    snapshot_id=snapshot_id,
                    snapshot_name=f"vul-fix_{snapshot_id}",
                    disk_id=f"disk-{quuid}",
                    provider_ref=f"lvm/{snapshot_id}",
                    created_at=to_stored(created_at),
                    deleted_at=None if deleted_at is None else to_stored(deleted_at),
                )
            )
        return snapshot_id
