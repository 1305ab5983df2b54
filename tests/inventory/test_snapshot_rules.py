from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from vulfix.inventory.machine_snapshots import (
    MAX_OFFSET,
    SnapshotListing,
    every_host_fresh,
    is_fresh,
    machine_snapshots,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_a_snapshot_is_fresh_for_less_than_24_hours() -> None:
    assert is_fresh(NOW - DAY + timedelta(seconds=1), NOW)
    assert not is_fresh(NOW - DAY, NOW)
    assert is_fresh(NOW + timedelta(minutes=1), NOW)  # a host clock ahead of ours


def test_every_host_must_be_known_and_fresh() -> None:
    fresh, stale = NOW - timedelta(hours=1), NOW - timedelta(hours=30)
    assert every_host_fresh(["a", "b"], {"a": fresh, "b": fresh}, NOW)
    assert not every_host_fresh(["a", "b"], {"a": fresh, "b": stale}, NOW)
    assert not every_host_fresh(["a", "b"], {"a": fresh, "b": None}, NOW)
    assert not every_host_fresh(["a", "unknown"], {"a": fresh}, NOW)
    assert not every_host_fresh([], {}, NOW)


class FakeReader:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool, int, int]] = []

    async def snapshot_listing(
        self, account_id: int, quuids: Sequence[str], latest_only: bool, limit: int, offset: int
    ) -> SnapshotListing:
        self.calls.append((list(quuids), latest_only, limit, offset))
        return SnapshotListing([], 3, {"a": NOW})


async def test_requested_hosts_are_deduplicated_and_huge_offsets_clamped() -> None:
    reader = FakeReader()
    answer = await machine_snapshots(reader, 1, ["a", "a"], True, 10, 2**64 - 1, NOW)
    assert reader.calls == [(["a"], True, 10, MAX_OFFSET)]
    assert answer.total_count == 3
    assert answer.snapshot_check is True
