from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cwp.inventory_setup import NOW, Seed, Snapshots, caller_of
from vulfix.cwp.display_time import DisplayClock, parse_zone
from vulfix.cwp.machine_snapshot import (
    DescribeMachineSnapshotRequest,
    DescribeMachineSnapshotResponse,
    MachineSnapshotAction,
)
from vulfix.fixing.clock import ManualClock
from vulfix.store.inventory_queries import SqlInventoryReader
from vulfix.store.inventory_tables import hosts, machine_snapshots
from vulfix.store.tables import to_stored
from vulfix.tcapi import ApiError
from vulfix.tcapi.schema import decode_params

HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
FLEET: dict[str, Any] = {
    "hosts": [
        {
            "Quuid": f"h-{i}",
            "HostName": f"web-{i}",
            "HostIp": f"10.0.0.{i}",
            "InstanceId": f"ins-0000000{i}",
            "RegionId": 4,
            "OsFamily": "debian",
        }
        for i in (1, 2, 3)
    ]
}


@pytest.fixture
def snapshots(engine: AsyncEngine) -> Snapshots:
    return Snapshots(engine)


@pytest.fixture
def handler(engine: AsyncEngine, clock: ManualClock) -> MachineSnapshotAction:
    display = DisplayClock(parse_zone("Asia/Shanghai"))
    return MachineSnapshotAction(SqlInventoryReader(engine), display, clock)


def request(
    quuids: list[str], listing_type: int = 1, limit: int = 100, offset: int = 0
) -> DescribeMachineSnapshotRequest:
    return DescribeMachineSnapshotRequest(
        quuids=quuids, listing_type=listing_type, limit=limit, offset=offset
    )


def ids(answer: DescribeMachineSnapshotResponse) -> list[str]:
    return [s.snapshot_id for s in answer.snapshots]


async def test_all_snapshots_newest_first_with_every_field(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots
) -> None:
    account = await seed("acme", FLEET)
    old = await snapshots.add("h-1", NOW - 3 * HOUR)
    new = await snapshots.add("h-1", NOW - HOUR)
    other = await snapshots.add("h-2", NOW - 2 * HOUR)
    answer = await handler(request(["h-1", "h-2"]), caller_of(account))
    assert ids(answer) == [new, other, old]
    assert answer.total_count == 3
    first = answer.snapshots[0]
    assert (first.quuid, first.host_name, first.host_ip) == ("h-1", "web-1", "10.0.0.1")
    assert (first.snapshot_name, first.disk_id) == (f"vul-fix_{new}", "disk-h-1")
    assert (first.instance_id, first.region_id) == ("ins-00000001", 4)
    assert first.create_time == "2026-03-01 19:00:00"  # 11:00 UTC shown at UTC+8


async def test_type_0_lists_each_host_newest_and_counts_hosts(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots
) -> None:
    account = await seed("acme", FLEET)
    await snapshots.add("h-1", NOW - 3 * HOUR)
    newest_1 = await snapshots.add("h-1", NOW - HOUR)
    newest_2 = await snapshots.add("h-2", NOW - 2 * HOUR)
    answer = await handler(request(["h-1", "h-2", "h-3"], listing_type=0), caller_of(account))
    assert ids(answer) == [newest_1, newest_2]
    assert answer.total_count == 2


async def test_equal_times_list_the_later_record_first(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots
) -> None:
    account = await seed("acme", FLEET)
    first = await snapshots.add("h-1", NOW - HOUR)
    second = await snapshots.add("h-1", NOW - HOUR)
    assert ids(await handler(request(["h-1"]), caller_of(account))) == [second, first]
    assert ids(await handler(request(["h-1"], listing_type=0), caller_of(account))) == [second]


async def test_paging_leaves_the_total_alone(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots
) -> None:
    account = await seed("acme", FLEET)
    made = [await snapshots.add("h-1", NOW - i * HOUR) for i in range(1, 6)]
    page = await handler(request(["h-1"], limit=2, offset=1), caller_of(account))
    assert (ids(page), page.total_count) == (made[1:3], 5)
    past_the_end = await handler(request(["h-1"], limit=2, offset=5), caller_of(account))
    assert (ids(past_the_end), past_the_end.total_count) == ([], 5)
    far = await handler(request(["h-1"], limit=2, offset=2**64 - 1), caller_of(account))
    assert (ids(far), far.total_count) == ([], 5)


async def test_deleted_snapshots_are_neither_listed_nor_fresh(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots
) -> None:
    account = await seed("acme", FLEET)
    kept = await snapshots.add("h-1", NOW - 2 * DAY)
    await snapshots.add("h-1", NOW - HOUR, deleted_at=NOW - HOUR / 2)
    answer = await handler(request(["h-1"], listing_type=0), caller_of(account))
    assert (ids(answer), answer.total_count, answer.snapshot_check) == ([kept], 1, False)


async def test_snapshot_check_needs_one_younger_than_24_hours_on_every_host(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots, clock: ManualClock
) -> None:
    account = await seed("acme", FLEET)
    await snapshots.add("h-1", NOW - DAY + timedelta(seconds=1))
    await snapshots.add("h-2", NOW - HOUR)
    both = request(["h-1", "h-2"], listing_type=0)
    assert (await handler(both, caller_of(account))).snapshot_check is True
    clock.advance(1)  # h-1's snapshot is now exactly 24 h old
    assert (await handler(both, caller_of(account))).snapshot_check is False


async def test_a_host_without_snapshots_or_unknown_fails_the_check(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots
) -> None:
    account = await seed("acme", FLEET)
    fresh = await snapshots.add("h-1", NOW - HOUR)
    without = await handler(request(["h-1", "h-3"]), caller_of(account))
    assert (ids(without), without.snapshot_check) == ([fresh], False)
    unknown = await handler(request(["h-1", "h-9"]), caller_of(account))
    assert (ids(unknown), unknown.total_count, unknown.snapshot_check) == ([fresh], 1, False)
    alone = await handler(request(["h-1", "h-1"]), caller_of(account))
    assert (ids(alone), alone.snapshot_check) == ([fresh], True)


async def test_another_account_hosts_are_unknown(
    handler: MachineSnapshotAction, seed: Seed, snapshots: Snapshots
) -> None:
    await seed("acme", FLEET)
    await snapshots.add("h-1", NOW - HOUR)
    other = await seed("globex", {"hosts": [{"Quuid": "g-1", "OsFamily": "debian"}]})
    answer = await handler(request(["h-1"]), caller_of(other))
    assert (ids(answer), answer.total_count, answer.snapshot_check) == ([], 0, False)


async def test_many_hosts_page_exactly_like_few(
    handler: MachineSnapshotAction, seed: Seed, engine: AsyncEngine
) -> None:
    count = 1_200  # several IN-list pieces in the store
    account = await seed(
        "acme", {"hosts": [{"Quuid": f"m-{i}", "OsFamily": "debian"} for i in range(count)]}
    )
    async with engine.begin() as conn:
        host_ids = dict((await conn.execute(select(hosts.c.quuid, hosts.c.id))).all())
        rows = [
            {
                "account_id": account,
                "host_id": host_ids[f"m-{i}"],
                "snapshot_id": f"snap-{i}-{age}",
                "snapshot_name": "",
                "disk_id": "disk-x",
                "provider_ref": "",
                # Interleave hosts of different pieces in time.
                "created_at": to_stored(NOW - timedelta(minutes=(i * 7919 + age * 13) % 5000)),
            }
            for i in range(count)
            for age in (0, 1)
        ]
        await conn.execute(insert(machine_snapshots), rows)
    # Rows get ids in insertion order, which breaks ties between equal times.
    order = sorted(range(len(rows)), key=lambda n: (rows[n]["created_at"], n), reverse=True)
    by_time = [rows[n] for n in order]
    newest_per_host: dict[int, dict[str, Any]] = {}
    for row in by_time:
        newest_per_host.setdefault(row["host_id"], row)
    expected_latest = [r["snapshot_id"] for r in by_time if newest_per_host[r["host_id"]] is r]
    expected_all = [r["snapshot_id"] for r in by_time]
    quuids = [f"m-{i}" for i in range(count)]
    for listing_type, offset in ((1, 0), (1, 1_234), (1, 2_350), (0, 0), (0, 1_150)):
        answer = await handler(
            request(quuids, listing_type=listing_type, limit=100, offset=offset),
            caller_of(account),
        )
        expected = expected_latest if listing_type == 0 else expected_all
        assert answer.total_count == len(expected)
        assert ids(answer) == expected[offset : offset + 100]
        assert answer.snapshot_check is False


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Type": 2}, "InvalidParameterValue"),
        ({"Limit": 0}, "InvalidParameterValue"),
        ({"Limit": 101}, "InvalidParameterValue"),
        ({"Offset": -1}, "InvalidParameterValue"),
        ({"Type": None}, "MissingParameter"),
        ({"Quuids": []}, "MissingParameter"),
    ],
)
def test_out_of_range_parameters_are_refused_on_the_wire(params: dict[str, Any], code: str) -> None:
    merged = {"Quuids": ["h-1"], "Type": 0, "Limit": 10, "Offset": 0, **params}
    with pytest.raises(ApiError) as caught:
        decode_params(
            {k: v for k, v in merged.items() if v is not None}, DescribeMachineSnapshotRequest
        )
    assert caught.value.error_code == code


def test_the_wire_names_match_the_documentation() -> None:
    decoded = decode_params(
        {"Quuids": ["h-1"], "Type": "1", "Limit": "10", "Offset": "0"},
        DescribeMachineSnapshotRequest,
    )
    assert decoded == request(["h-1"], listing_type=1, limit=10, offset=0)


async def test_malformed_quuids_are_refused(handler: MachineSnapshotAction, seed: Seed) -> None:
    account = await seed("acme", FLEET)
    with pytest.raises(ApiError) as caught:
        await handler(request(["h-1", "not a quuid"]), caller_of(account))
    assert caught.value.error_code == "InvalidParameter.InvalidFormat"
