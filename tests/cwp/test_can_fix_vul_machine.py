from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cwp.inventory_setup import NOW, Seed, caller_of, set_last_seen
from vulfix.cwp.can_fix_vul_machine import (
    CanFixVulMachineAction,
    DescribeCanFixVulMachineRequest,
)
from vulfix.fixing.clock import ManualClock
from vulfix.store.inventory_queries import SqlInventoryReader
from vulfix.store.inventory_tables import findings
from vulfix.tcapi import ApiError
from vulfix.tcapi.schema import decode_params

FLEET: dict[str, Any] = {
    "hosts": [
        {
            "Quuid": "h-1",
            "Uuid": "agent-1",
            "HostName": "web-1",
            "HostIp": "10.0.0.1",
            "InstanceId": "ins-00000001",
            "Tags": ["prod", "web"],
            "OsFamily": "debian",
        },
        {"Quuid": "h-2", "HostName": "db-1", "MachineType": "BM", "OsFamily": "rhel"},
        {"Quuid": "h-3", "HostName": "files", "MachineType": "Other", "OsFamily": "windows"},
    ],
    "vulnerabilities": [
        {"VulId": 1, "VulName": "openssh", "FixTag": ["restarts sshd"]},
        {"VulId": 2, "VulName": "sudo", "VulCategory": 2},
        {"VulId": 3, "VulName": "windows", "Kbs": [{"KbId": 5, "KbNumber": "KB5"}]},
    ],
    "findings": [
        {"Quuid": "h-1", "VulId": 1},
        {"Quuid": "h-2", "VulId": 1, "IsSupportAutoFix": 3},
        {"Quuid": "h-2", "VulId": 2},
        {"Quuid": "h-3", "VulId": 3},
    ],
}


def action(engine: AsyncEngine, clock: ManualClock, **options: Any) -> CanFixVulMachineAction:
    return CanFixVulMachineAction(SqlInventoryReader(engine), clock, **options)


def request(vul_ids: list[int], quuids: list[str] | None = None) -> DescribeCanFixVulMachineRequest:
    return DescribeCanFixVulMachineRequest(vul_ids=vul_ids, quuids=quuids)


async def online_everywhere(engine: AsyncEngine) -> None:
    for quuid in ("h-1", "h-2", "h-3"):
        await set_last_seen(engine, quuid, NOW - timedelta(seconds=5))


async def test_every_field_of_an_affected_host_is_shown(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    await online_everywhere(engine)
    answer = await action(engine, clock)(request([1]), caller_of(account))
    (info,) = answer.vul_info
    assert (info.vul_id, info.vul_name, info.fix_tag, info.vul_category) == (
        1,
        "openssh",
        ["restarts sshd"],
        4,
    )
    web, db = info.host_list
    assert (web.host_name, web.host_ip, web.tags, web.quuid) == (
        "web-1",
        "10.0.0.1",
        ["prod", "web"],
        "h-1",
    )
    assert (web.uuid, web.instance_id, web.machine_type) == ("agent-1", "ins-00000001", "CVM")
    assert (web.is_support_auto_fix, web.agent_status) == (1, 1)
    assert (db.quuid, db.machine_type, db.is_support_auto_fix) == ("h-2", "BM", 3)


async def test_entries_follow_the_request_and_unknown_ids_are_omitted(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    answer = await action(engine, clock)(request([3, 99, 1, 3, 2**64 - 1]), caller_of(account))
    assert [info.vul_id for info in answer.vul_info] == [3, 1]
    assert answer.vul_info[0].vul_category == 5
    nothing = await action(engine, clock)(request([98, 99]), caller_of(account))
    assert nothing.vul_info == []


async def test_quuids_narrow_the_host_lists_but_keep_the_vulnerabilities(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    answer = await action(engine, clock)(request([1, 2, 3], ["h-2", "h-9"]), caller_of(account))
    lists = {info.vul_id: [h.quuid for h in info.host_list] for info in answer.vul_info}
    assert lists == {1: ["h-2"], 2: ["h-2"], 3: []}


async def test_a_long_host_list_narrows_just_the_same(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    quuids = [f"unknown-{i}" for i in range(700)] + ["h-1"]
    answer = await action(engine, clock)(request([1], quuids), caller_of(account))
    assert [h.quuid for h in answer.vul_info[0].host_list] == ["h-1"]


async def test_another_account_sees_nothing_of_this_one(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    await seed("acme", FLEET)
    other = await seed("globex", {"hosts": [{"Quuid": "g-1", "OsFamily": "debian"}]})
    answer = await action(engine, clock)(request([1, 2, 3]), caller_of(other))
    assert answer.vul_info == []


async def test_agent_status_follows_the_last_time_the_agent_was_seen(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    await set_last_seen(engine, "h-1", NOW - timedelta(seconds=90))
    await set_last_seen(engine, "h-2", NOW - timedelta(seconds=91))
    answer = await action(engine, clock)(request([1]), caller_of(account))
    statuses = {h.quuid: h.agent_status for h in answer.vul_info[0].host_list}
    assert statuses == {"h-1": 1, "h-2": 0}
    never = await action(engine, clock)(request([3]), caller_of(account))
    assert never.vul_info[0].host_list[0].agent_status == 0
    clock.advance(1)
    later = await action(engine, clock)(request([1]), caller_of(account))
    assert [h.agent_status for h in later.vul_info[0].host_list] == [0, 0]


async def test_the_offline_window_is_configurable(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    await set_last_seen(engine, "h-1", NOW - timedelta(seconds=200))
    answer = await action(engine, clock, offline_after=300)(request([1]), caller_of(account))
    assert answer.vul_info[0].host_list[0].agent_status == 1


@pytest.mark.parametrize(("stored", "offline", "online"), [(1, 2, 1), (9, 2, 9)])
async def test_a_promised_fix_shows_2_while_the_agent_is_offline(
    engine: AsyncEngine, clock: ManualClock, seed: Seed, stored: int, offline: int, online: int
) -> None:
    account = await seed("acme", FLEET)
    async with engine.begin() as conn:
        await conn.execute(update(findings).where(findings.c.vul_id == 2).values(state=stored))
    handler = action(engine, clock)
    shown = await handler(request([2]), caller_of(account))
    assert shown.vul_info[0].host_list[0].is_support_auto_fix == offline
    await set_last_seen(engine, "h-2", NOW)
    shown = await handler(request([2]), caller_of(account))
    assert shown.vul_info[0].host_list[0].is_support_auto_fix == online


@pytest.mark.parametrize("stored", [0, 3, 5, 6, 7, 10])
async def test_other_states_show_as_stored_while_offline(
    engine: AsyncEngine, clock: ManualClock, seed: Seed, stored: int
) -> None:
    account = await seed("acme", FLEET)
    async with engine.begin() as conn:
        await conn.execute(update(findings).where(findings.c.vul_id == 2).values(state=stored))
    shown = await action(engine, clock)(request([2]), caller_of(account))
    assert shown.vul_info[0].host_list[0].is_support_auto_fix == stored


@pytest.mark.parametrize(
    ("quuid", "code"),
    [("", "InvalidParameter.MissingParameter"), ("bad quuid", "InvalidParameter")],
)
async def test_malformed_quuids_are_refused(
    engine: AsyncEngine, clock: ManualClock, seed: Seed, quuid: str, code: str
) -> None:
    account = await seed("acme", FLEET)
    with pytest.raises(ApiError) as caught:
        await action(engine, clock)(request([1], ["h-1", quuid]), caller_of(account))
    assert caught.value.error_code == code


def test_vul_ids_are_required_and_non_empty_on_the_wire() -> None:
    for params in ({}, {"VulIds": []}):
        with pytest.raises(ApiError) as caught:
            decode_params(params, DescribeCanFixVulMachineRequest)
        assert caught.value.error_code == "MissingParameter"
    decoded = decode_params(
        {"VulIds": ["1", 2], "Quuids": ["h-1"]}, DescribeCanFixVulMachineRequest
    )
    assert decoded == request([1, 2], ["h-1"])
