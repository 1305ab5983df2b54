from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.inventory.errors import InvalidDocumentError
from vulfix.inventory.records import Inventory
from vulfix.inventory.validation import load_inventory
from vulfix.store.accounts import InvalidAccountNameError, UnknownAccountError
from vulfix.store.api_keys import ApiKeyStore
from vulfix.store.inventory_repository import InventoryStore
from vulfix.store.inventory_tables import findings, hosts, kb_patches, vulnerabilities
from vulfix.store.tables import accounts

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "fleet.json"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def inventory(document: dict[str, Any]) -> Inventory:
    return load_inventory(json.dumps(document).encode())


def small_fleet(host_name: str = "web-1", state: int = 1) -> Inventory:
    return inventory(
        {
            "hosts": [
                {"Quuid": "h-1", "OsFamily": "debian", "HostName": host_name, "Tags": ["prod"]},
                {"Quuid": "h-2", "OsFamily": "windows", "MachineType": "Other"},
            ],
            "vulnerabilities": [
                {
                    "VulId": 1,
                    "VulName": "openssh",
                    "Packages": [{"Name": "openssh-server", "FixedVersion": "1:9.2p1-2+deb12u3"}],
                },
                {
                    "VulId": 2,
                    "VulName": "windows update",
                    "Kbs": [
                        {"KbId": 11, "KbNumber": "KB11"},
                        {"KbId": 12, "KbNumber": "KB12", "PreKbList": ["KB11"]},
                    ],
                },
            ],
            "findings": [
                {"Quuid": "h-1", "VulId": 1, "IsSupportAutoFix": state},
                {"Quuid": "h-2", "VulId": 2, "IsSupportAutoFix": state},
            ],
        }
    )


async def rows(engine: AsyncEngine, query: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(query)).all())


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
def inventory_store(engine: AsyncEngine) -> InventoryStore:
    return InventoryStore(engine)


async def test_the_example_fleet_imports_into_a_new_account(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    summary = await inventory_store.import_document(
        "acme", load_inventory(EXAMPLE.read_bytes()), NOW
    )
    assert (summary.hosts_inserted, summary.hosts_updated) == (12, 0)
    assert (summary.vulnerabilities_inserted, summary.vulnerabilities_updated) == (6, 0)
    assert (summary.kb_patches, summary.findings_inserted) == (2, 16)
    (account,) = await rows(engine, select(accounts.c.id, accounts.c.name))
    assert (account.id, account.name) == (summary.account_id, "acme")
    assert await count(engine, hosts) == 12


async def test_stored_rows_carry_every_fact(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    (h1, h2) = await rows(engine, select(hosts).order_by(hosts.c.quuid))
    assert (h1.host_name, h1.tags, h1.machine_type, h1.snapshot_supported) == (
        "web-1",
        ["prod"],
        "CVM",
        True,
    )
    assert (h2.machine_type, h2.snapshot_supported, h2.os_family) == ("Other", False, "windows")
    assert h1.host_token_hash is None and h1.enrolled_at is None and h1.last_seen_at is None
    assert h1.created_at == h1.updated_at == NOW.replace(tzinfo=None)
    (v1, v2) = await rows(engine, select(vulnerabilities).order_by(vulnerabilities.c.vul_id))
    assert v1.packages == [{"Name": "openssh-server", "FixedVersion": "1:9.2p1-2+deb12u3"}]
    assert (v1.vul_category, v2.vul_category, v1.fix_methods) == (4, 5, [0])
    kbs = await rows(engine, select(kb_patches).order_by(kb_patches.c.kb_id))
    assert [(k.vul_id, k.kb_number, k.pre_kb_list) for k in kbs] == [
        (2, "KB11", []),
        (2, "KB12", ["KB11"]),
    ]
    assert sorted((f.vul_id, f.state) for f in await rows(engine, select(findings))) == [
        (1, 1),
        (2, 1),
    ]


async def test_reimport_updates_facts_but_not_what_the_agent_owns(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    seen = datetime(2026, 3, 1, 12, 30)
    async with engine.begin() as conn:
        await conn.execute(
            update(hosts)
            .where(hosts.c.quuid == "h-1")
            .values(host_token_hash="ab" * 32, enrolled_at=seen, last_seen_at=seen)
        )
    summary = await inventory_store.import_document("acme", small_fleet("web-1-renamed"), LATER)
    assert (summary.hosts_inserted, summary.hosts_updated) == (0, 2)
    assert (summary.vulnerabilities_inserted, summary.vulnerabilities_updated) == (0, 2)
    assert (summary.findings_inserted, summary.findings_updated) == (0, 2)
    (h1,) = await rows(engine, select(hosts).where(hosts.c.quuid == "h-1"))
    assert h1.host_name == "web-1-renamed"
    assert (h1.host_token_hash, h1.enrolled_at, h1.last_seen_at) == ("ab" * 32, seen, seen)
    assert h1.created_at == NOW.replace(tzinfo=None)
    assert h1.updated_at == LATER.replace(tzinfo=None)
    assert await count(engine, hosts) == 2


async def test_a_generated_disk_id_survives_reimport(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    before = await rows(engine, select(hosts.c.quuid, hosts.c.disk_id).order_by(hosts.c.quuid))
    await inventory_store.import_document("acme", small_fleet(), LATER)
    after = await rows(engine, select(hosts.c.quuid, hosts.c.disk_id).order_by(hosts.c.quuid))
    assert before == after


async def test_reimport_replaces_a_vulnerability_kb_patches(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    one_kb = inventory(
        {
            "vulnerabilities": [
                {"VulId": 2, "VulName": "windows update", "Kbs": [{"KbId": 13, "KbNumber": "KB13"}]}
            ]
        }
    )
    summary = await inventory_store.import_document("acme", one_kb, LATER)
    assert summary.kb_patches == 1
    kbs = await rows(engine, select(kb_patches.c.kb_id))
    assert [k.kb_id for k in kbs] == [13]


async def test_the_document_state_wins_unless_the_engine_owns_the_finding(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    for engine_state in (5, 6, 9):
        async with engine.begin() as conn:
            await conn.execute(
                update(findings).where(findings.c.vul_id == 1).values(state=engine_state)
            )
        summary = await inventory_store.import_document("acme", small_fleet(state=10), LATER)
        assert (summary.findings_updated, summary.findings_kept) == (1, 1)
        states = dict(await rows(engine, select(findings.c.vul_id, findings.c.state)))
        assert states == {1: engine_state, 2: 10}


async def test_findings_may_reference_stored_hosts_and_vulnerabilities(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    more = inventory({"findings": [{"Quuid": "h-1", "VulId": 2, "IsSupportAutoFix": 7}]})
    summary = await inventory_store.import_document("acme", more, LATER)
    assert (summary.findings_inserted, summary.hosts_inserted) == (1, 0)
    assert await count(engine, findings) == 3


async def test_entries_missing_from_a_later_document_are_left_alone(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    await inventory_store.import_document("acme", inventory({"hosts": []}), LATER)
    assert (await count(engine, hosts), await count(engine, findings)) == (2, 2)


async def test_a_bad_reference_rejects_the_whole_document(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    document = inventory(
        {
            "hosts": [{"Quuid": "h-1", "OsFamily": "debian"}],
            "vulnerabilities": [{"VulId": 1, "VulName": "x"}],
            "findings": [{"Quuid": "h-1", "VulId": 1}, {"Quuid": "h-1", "VulId": 99}],
        }
    )
    with pytest.raises(InvalidDocumentError) as caught:
        await inventory_store.import_document("acme", document, NOW)
    assert caught.value.problems == ("findings[1]: unknown VulId 99",)
    for table in (accounts, hosts, vulnerabilities, findings):
        assert await count(engine, table) == 0


async def test_another_account_hosts_cannot_be_referenced(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    await inventory_store.import_document("acme", small_fleet(), NOW)
    summary = await inventory_store.import_document("globex", small_fleet("other"), NOW)
    assert summary.hosts_inserted == 2  # the same Quuids, another account
    with pytest.raises(InvalidDocumentError) as caught:
        await inventory_store.import_document(
            "initech", inventory({"findings": [{"Quuid": "h-1", "VulId": 1}]}), NOW
        )
    assert caught.value.problems == (
        'findings[0]: unknown Quuid "h-1"',
        "findings[0]: unknown VulId 1",
    )


async def test_the_account_is_shared_with_api_keys_and_may_be_named_by_id(
    store: ApiKeyStore, inventory_store: InventoryStore
) -> None:
    key = await store.create_key("acme", read_only=False)
    first = await inventory_store.import_document("acme", small_fleet(), NOW)
    active = await store.find_active_key(key.secret_id)
    assert active is not None and active.account_id == first.account_id
    again = await inventory_store.import_document(first.account_id, small_fleet(), LATER)
    assert again.account_id == first.account_id
    assert again.hosts_updated == 2
    with pytest.raises(UnknownAccountError):
        await inventory_store.import_document(first.account_id + 1, small_fleet(), NOW)
    with pytest.raises(InvalidAccountNameError):
        await inventory_store.import_document(" acme", small_fleet(), NOW)


async def test_ten_thousand_hosts_import_in_bulk(
    engine: AsyncEngine, inventory_store: InventoryStore
) -> None:
    hosts_count = 10_000
    document = {
        "hosts": [
            {"Quuid": f"q-{i:05d}", "OsFamily": "debian", "HostIp": f"10.1.{i // 256}.{i % 256}"}
            for i in range(hosts_count)
        ],
        "vulnerabilities": [{"VulId": v, "VulName": f"v{v}"} for v in (1, 2, 3)],
        "findings": [
            {"Quuid": f"q-{i:05d}", "VulId": v} for i in range(hosts_count) for v in (1, 2, 3)
        ],
    }
    data = json.dumps(document).encode()
    started = time.perf_counter()
    summary = await inventory_store.import_document("acme", load_inventory(data), NOW)
    first = time.perf_counter() - started
    started = time.perf_counter()
    again = await inventory_store.import_document("acme", load_inventory(data), LATER)
    second = time.perf_counter() - started
    print(f"10k hosts x 3 findings: first import {first:.2f}s, re-import {second:.2f}s")
    assert (summary.hosts_inserted, summary.findings_inserted) == (hosts_count, 3 * hosts_count)
    assert (again.hosts_updated, again.findings_updated) == (hosts_count, 3 * hosts_count)
    assert await count(engine, findings) == 3 * hosts_count
    # Row-by-row statements take minutes here; bulk ones about a second.
    assert first < 15 and second < 15
