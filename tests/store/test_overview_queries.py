"""The console's lists: hosts with agent and snapshot facts, vulnerabilities with their
findings by state, FixIds newest first; each scoped to one account and paged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.inventory.validation import load_inventory
from vulfix.store.database import write_transaction
from vulfix.store.inventory_repository import InventoryStore
from vulfix.store.inventory_tables import hosts, machine_snapshots
from vulfix.store.overview_queries import SqlOverviewReader
from vulfix.store.tables import accounts, fix_tasks

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def fleet(prefix: str) -> bytes:
    return json.dumps(
        {
            "hosts": [
                {"Quuid": f"{prefix}-{n}", "HostName": f"{prefix}-{n}", "OsFamily": "debian"}
                for n in range(3)
            ],
            "vulnerabilities": [
                {"VulId": 7, "VulName": "openssl", "Level": "high", "CveIds": ["CVE-2026-0007"]},
                {"VulId": 8, "VulName": "settled"},
            ],
            "findings": [
                {"Quuid": f"{prefix}-0", "VulId": 7, "IsSupportAutoFix": 1},
                {"Quuid": f"{prefix}-1", "VulId": 7, "IsSupportAutoFix": 0},
                {"Quuid": f"{prefix}-2", "VulId": 7, "IsSupportAutoFix": 10},
                {"Quuid": f"{prefix}-0", "VulId": 8, "IsSupportAutoFix": 10},
            ],
        }
    ).encode()


async def setup(engine: AsyncEngine) -> tuple[int, int]:
    store = InventoryStore(engine)
    await store.import_document("acme", load_inventory(fleet("a")), NOW)
    await store.import_document("other", load_inventory(fleet("o")), NOW)
    async with write_transaction(engine) as conn:
        ids = dict((await conn.execute(select(accounts.c.name, accounts.c.id))).all())
        host_ids = dict((await conn.execute(select(hosts.c.quuid, hosts.c.id))).all())
        await conn.execute(
            update(hosts)
            .where(hosts.c.quuid == "a-0")
            .values(enrolled_at=NOW.replace(tzinfo=None), last_seen_at=NOW.replace(tzinfo=None))
        )
        for n, (snapshot_id, age, deleted) in enumerate(
            [("snap-old", 48, False), ("snap-new", 2, False), ("snap-gone", 1, True)]
        ):
            created = (NOW - timedelta(hours=age)).replace(tzinfo=None)
            await conn.execute(
                insert(machine_snapshots).values(
                    account_id=ids["acme"], host_id=host_ids["a-0"], snapshot_id=snapshot_id,
                    snapshot_name=f"s{n}", disk_id="", provider_ref="", created_at=created,
                    deleted_at=created if deleted else None,
                )
            )  # fmt: skip
        for account in ("acme", "other", "acme", "acme"):
            await conn.execute(
                insert(fix_tasks).values(
                    account_id=ids[account], created_at=NOW.replace(tzinfo=None), save_days=1,
                    snapshot_name="", max_concurrency="", max_errors="", stopped_reason="",
                    version=1,
                )
            )  # fmt: skip
    return ids["acme"], ids["other"]


async def test_hosts_carry_agent_pending_work_and_newest_live_snapshot(engine: AsyncEngine) -> None:
    acme, _ = await setup(engine)
    page = await SqlOverviewReader(engine).host_page(acme, 0, 20)
    assert page.total == 3
    by_quuid = {host.quuid: host for host in page.items}
    assert [host.quuid for host in page.items] == ["a-0", "a-1", "a-2"]
    first = by_quuid["a-0"]
    assert first.enrolled and first.last_seen_at == NOW
    assert first.pending_vulnerabilities == 1, "the ignored finding is settled"
    assert first.latest_snapshot_id == "snap-new", "the deleted snapshot is not offered"
    assert first.latest_snapshot_at == NOW - timedelta(hours=2)
    assert not by_quuid["a-2"].enrolled and by_quuid["a-2"].pending_vulnerabilities == 0
    assert by_quuid["a-1"].latest_snapshot_id == "" and by_quuid["a-1"].latest_snapshot_at is None


async def test_host_pages_are_bounded_and_cover_the_account(engine: AsyncEngine) -> None:
    acme, _ = await setup(engine)
    reader = SqlOverviewReader(engine)
    first, second = await reader.host_page(acme, 0, 2), await reader.host_page(acme, 2, 2)
    assert (first.total, second.total) == (3, 3)
    assert [h.quuid for h in first.items + second.items] == ["a-0", "a-1", "a-2"]


async def test_vulnerabilities_count_findings_by_state_unsettled_first(engine: AsyncEngine) -> None:
    acme, _ = await setup(engine)
    page = await SqlOverviewReader(engine).vulnerability_page(acme, 0, 20)
    assert page.total == 2
    assert [v.vul_id for v in page.items] == [7, 8]
    openssl, settled = page.items
    assert openssl.level == "high" and openssl.cve_ids == ["CVE-2026-0007"]
    assert (openssl.affected_hosts, openssl.can_fix_hosts, openssl.fixed_hosts) == (2, 1, 0)
    assert settled.affected_hosts == 0


async def test_fix_ids_are_the_accounts_own_newest_first(engine: AsyncEngine) -> None:
    acme, other = await setup(engine)
    reader = SqlOverviewReader(engine)
    mine = await reader.fix_id_page(acme, 0, 2)
    assert mine.total == 3 and len(mine.items) == 2
    assert mine.items == sorted(mine.items, reverse=True)
    rest = await reader.fix_id_page(acme, 2, 2)
    theirs = await reader.fix_id_page(other, 0, 20)
    assert theirs.total == 1 and not set(theirs.items) & set(mine.items + rest.items)
