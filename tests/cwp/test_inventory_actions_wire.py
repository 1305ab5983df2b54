"""The two inventory actions behind the real wire entry: flattened GET and JSON POST."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.cwp.inventory_setup import NOW, Seed, Snapshots, set_last_seen
from tests.signed_requests import Signer
from tests.tcapi.wire_app import call
from vulfix.cwp.can_fix_vul_machine import CanFixVulMachineAction, DescribeCanFixVulMachineRequest
from vulfix.cwp.display_time import DisplayClock, parse_zone
from vulfix.cwp.machine_snapshot import DescribeMachineSnapshotRequest, MachineSnapshotAction
from vulfix.fixing.clock import ManualClock
from vulfix.store.inventory_queries import SqlInventoryReader
from vulfix.tcapi import (
    ApiService,
    Authenticator,
    Credential,
    MemoryRateLimiter,
    RatePolicy,
    TcApiApp,
    WireConfig,
)

SECRET_ID = "AKIDinventory000000000000000000000001"
SECRET_KEY = "inventorySecretKey0000000000000001"
FLEET: dict[str, Any] = {
    "hosts": [
        {"Quuid": "h-1", "HostName": "web-1", "Tags": ["prod"], "OsFamily": "debian"},
        {"Quuid": "h-2", "HostName": "web-2", "OsFamily": "debian"},
    ],
    "vulnerabilities": [{"VulId": 7, "VulName": "openssh", "FixTag": ["needs reboot"]}],
    "findings": [{"Quuid": "h-1", "VulId": 7}, {"Quuid": "h-2", "VulId": 7}],
}


class OneKey:
    def __init__(self, account_id: int) -> None:
        self.credential = Credential(SECRET_ID, SECRET_KEY, account_id, "acme", 1, True)

    async def lookup(self, secret_id: str) -> Credential | None:
        return self.credential if secret_id == SECRET_ID else None


def wire(engine: AsyncEngine, clock: ManualClock, account_id: int) -> TcApiApp:
    reader = SqlInventoryReader(engine)
    service = ApiService("cwp", "2018-02-28")
    service.add(
        "DescribeCanFixVulMachine",
        DescribeCanFixVulMachineRequest,
        CanFixVulMachineAction(reader, clock),
        mutating=False,
    )
    service.add(
        "DescribeMachineSnapshot",
        DescribeMachineSnapshotRequest,
        MachineSnapshotAction(reader, DisplayClock(parse_zone("+08:00")), clock),
        mutating=False,
    )
    config = WireConfig(
        service=service,
        authenticator=Authenticator(OneKey(account_id)),
        rate_limiter=MemoryRateLimiter(),
        rate_policy=RatePolicy(0),
    )

    async def fallback(scope: object, receive: object, send: object) -> None:
        raise AssertionError("fallback reached")

    return TcApiApp(config, fallback)  # type: ignore[arg-type]


def answer(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["Response"]
    body.pop("RequestId")
    return body


async def test_can_fix_vul_machine_over_a_flattened_get(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    await set_last_seen(engine, "h-1", NOW - timedelta(seconds=30))
    signer = Signer(SECRET_ID, SECRET_KEY, action="DescribeCanFixVulMachine")
    response = await call(wire(engine, clock, account), signer.tc3_get("VulIds.0=7&VulIds.1=8"))
    assert answer(response) == {
        "VulInfo": [
            {
                "VulId": 7,
                "VulName": "openssh",
                "HostList": [
                    {
                        "HostName": "web-1",
                        "HostIp": "",
                        "Tags": ["prod"],
                        "Quuid": "h-1",
                        "IsSupportAutoFix": 1,
                        "Uuid": "",
                        "InstanceId": "",
                        "MachineType": "CVM",
                        "AgentStatus": 1,
                    },
                    {
                        "HostName": "web-2",
                        "HostIp": "",
                        "Tags": [],
                        "Quuid": "h-2",
                        "IsSupportAutoFix": 2,
                        "Uuid": "",
                        "InstanceId": "",
                        "MachineType": "CVM",
                        "AgentStatus": 0,
                    },
                ],
                "FixTag": ["needs reboot"],
                "VulCategory": 4,
            }
        ]
    }


async def test_can_fix_vul_machine_without_vul_ids_is_missing_parameter(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    signer = Signer(SECRET_ID, SECRET_KEY, action="DescribeCanFixVulMachine")
    response = await call(wire(engine, clock, account), signer.tc3_post(b'{"VulIds": []}'))
    assert answer(response)["Error"]["Code"] == "MissingParameter"


async def test_machine_snapshot_as_in_the_documented_example(
    engine: AsyncEngine, clock: ManualClock, seed: Seed
) -> None:
    account = await seed("acme", FLEET)
    snapshot_id = await Snapshots(engine).add("h-1", NOW - timedelta(hours=2))
    signer = Signer(SECRET_ID, SECRET_KEY, action="DescribeMachineSnapshot")
    app = wire(engine, clock, account)
    response = await call(app, signer.tc3_get("Limit=10&Offset=0&Quuids.0=h-1&Type=0"))
    assert answer(response) == {
        "List": [
            {
                "Quuid": "h-1",
                "HostName": "web-1",
                "HostIp": "",
                "SnapshotName": f"vul-fix_{snapshot_id}",
                "CreateTime": "2026-03-01 18:00:00",
                "DiskId": "disk-h-1",
                "InstanceId": "",
                "RegionId": 1,
                "SnapshotId": snapshot_id,
            }
        ],
        "TotalCount": 1,
        "SnapshotCheck": True,
    }
    too_many = await call(
        app, signer.tc3_post(b'{"Quuids": ["h-1"], "Type": 0, "Limit": 101, "Offset": 0}')
    )
    assert answer(too_many)["Error"]["Code"] == "InvalidParameterValue"
