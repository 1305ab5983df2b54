"""DescribeMachineSnapshot: hosts' existing snapshots, newest first, and whether every host
has one younger than 24 hours (spec §2.6, §3.5)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from vulfix.cwp.display_time import DisplayClock
from vulfix.cwp.error_codes import api_errors
from vulfix.cwp.quuids import check_quuids
from vulfix.cwp.wire_types import UInt, WireStruct
from vulfix.fixing.clock import Clock
from vulfix.inventory.machine_snapshots import MachineSnapshot, SnapshotReader, machine_snapshots
from vulfix.tcapi import Caller

LATEST_PER_HOST = 0
ALL_SNAPSHOTS = 1
ListingType = Annotated[int, msgspec.Meta(ge=LATEST_PER_HOST, le=ALL_SNAPSHOTS)]
PageSize = Annotated[int, msgspec.Meta(ge=1, le=100)]


class DescribeMachineSnapshotRequest(WireStruct):
    quuids: list[str]
    listing_type: ListingType = msgspec.field(name="Type")
    limit: PageSize
    offset: UInt


class MachineSnapshotInfo(WireStruct):
    quuid: str
    host_name: str
    host_ip: str
    snapshot_name: str
    create_time: str
    disk_id: str
    instance_id: str
    region_id: int
    snapshot_id: str


class DescribeMachineSnapshotResponse(WireStruct):
    snapshots: list[MachineSnapshotInfo] = msgspec.field(name="List")
    total_count: int
    snapshot_check: bool


class MachineSnapshotAction:
    def __init__(self, reader: SnapshotReader, display: DisplayClock, clock: Clock) -> None:
        self.reader = reader
        self.display = display
        self.clock = clock

    async def __call__(
        self, req: DescribeMachineSnapshotRequest, caller: Caller
    ) -> DescribeMachineSnapshotResponse:
        check_quuids(req.quuids, "Quuids")
        async with api_errors():
            answer = await machine_snapshots(
                self.reader,
                caller.account_id,
                req.quuids,
                latest_only=req.listing_type == LATEST_PER_HOST,
                limit=req.limit,
                offset=req.offset,
                now=self.clock.now(),
            )
        return DescribeMachineSnapshotResponse(
            snapshots=[self._info(snapshot) for snapshot in answer.snapshots],
            total_count=answer.total_count,
            snapshot_check=answer.snapshot_check,
        )

    def _info(self, snapshot: MachineSnapshot) -> MachineSnapshotInfo:
        return MachineSnapshotInfo(
            quuid=snapshot.quuid,
            host_name=snapshot.host_name,
            host_ip=snapshot.host_ip,
            snapshot_name=snapshot.snapshot_name,
            create_time=self.display.show(snapshot.created_at),
            disk_id=snapshot.disk_id,
            instance_id=snapshot.instance_id,
            region_id=snapshot.region_id,
            snapshot_id=snapshot.snapshot_id,
        )
