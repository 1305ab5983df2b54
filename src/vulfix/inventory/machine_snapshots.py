"""Hosts' disk snapshots as DescribeMachineSnapshot lists them, and the 24-hour rule.

A fix with `SaveDays = 0` takes no snapshot, which is allowed only for a host that already has
one younger than 24 hours; `SnapshotCheck` tells a caller beforehand whether every host does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

SNAPSHOT_FRESH_FOR = timedelta(hours=24)
# Beyond any row count; keeps a uint64 Offset inside what SQL engines accept.
MAX_OFFSET = 2**62


@dataclass(frozen=True, slots=True)
class MachineSnapshot:
    quuid: str
    host_name: str
    host_ip: str
    snapshot_name: str
    created_at: datetime
    disk_id: str
    instance_id: str
    region_id: int
    snapshot_id: str


@dataclass(frozen=True, slots=True)
class SnapshotListing:
    snapshots: list[MachineSnapshot]  # newest first, one page
    total_count: int  # before paging
    # Every requested Quuid that is a host of the account: its newest snapshot, if any.
    latest_by_host: Mapping[str, datetime | None]


class SnapshotReader(Protocol):
    async def snapshot_listing(
        self, account_id: int, quuids: Sequence[str], latest_only: bool, limit: int, offset: int
    ) -> SnapshotListing:
        """Snapshots of these hosts that are not deleted, newest first (`latest_only`: the
        newest per host), one page of them, with the count and each host's newest."""
        ...


def is_fresh(created_at: datetime, now: datetime) -> bool:
    """Younger than 24 hours: such a snapshot lets a fix skip taking a new one."""
    return now - created_at < SNAPSHOT_FRESH_FOR


def every_host_fresh(
    quuids: Sequence[str], latest_by_host: Mapping[str, datetime | None], now: datetime
) -> bool:
    """True iff every Quuid is a known host whose newest snapshot is fresh."""
    for quuid in quuids:
        latest = latest_by_host.get(quuid)
        if latest is None or not is_fresh(latest, now):
            return False
    return bool(quuids)


@dataclass(frozen=True, slots=True)
class SnapshotAnswer:
    snapshots: list[MachineSnapshot]
    total_count: int
    snapshot_check: bool


async def machine_snapshots(
    reader: SnapshotReader,
    account_id: int,
    quuids: Sequence[str],
    latest_only: bool,
    limit: int,
    offset: int,
    now: datetime,
) -> SnapshotAnswer:
    wanted = list(dict.fromkeys(quuids))
    listing = await reader.snapshot_listing(
        account_id, wanted, latest_only, limit, min(offset, MAX_OFFSET)
    )
    return SnapshotAnswer(
        listing.snapshots,
        listing.total_count,
        every_host_fresh(wanted, listing.latest_by_host, now),
    )
