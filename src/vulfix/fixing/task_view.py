"""A fix task as read for its status, and every figure derived from its records.

Nothing here is stored twice: counts, progress, the end time, the retry flags and the
remaining time are computed from the records each time, over whatever view was asked for
(the whole task, one vulnerability, one host), so lists and figures always agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from vulfix.fixing.statuses import (
    FIX_FAILED,
    FIX_TERMINAL,
    SNAPSHOT_TERMINAL,
    FixStatus,
    SnapshotStatus,
)

RETRY_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class HostRef:
    quuid: str
    host_name: str
    host_ip: str
    machine_type: str


@dataclass(frozen=True, slots=True)
class SnapshotRecordView:
    id: int
    host: HostRef
    snapshot_name: str
    snapshot_id: str
    status: SnapshotStatus
    fail_reason: str
    modified_at: datetime
    retried: bool = False


@dataclass(frozen=True, slots=True)
class FixItemView:
    """One CreateVulFixTaskQuuids entry: a vulnerability (or KB patch) and how to fix it."""

    id: int
    vul_id: int
    vul_name: str
    fix_method: int
    kb_id: int = 0
    kb_number: str = ""
    kb_name: str = ""
    pre_kb_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FixRecordView:
    id: int
    item_id: int
    host: HostRef
    status: FixStatus
    fail_reason: str
    modified_at: datetime
    dispatched_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DurationEstimates:
    """Mean seconds of one snapshot job and one fix job (observed, or priors)."""

    snapshot_seconds: float = 60.0
    fix_seconds: float = 120.0


@dataclass(frozen=True)
class TaskView:
    fix_id: int
    created_at: datetime
    items: tuple[FixItemView, ...]
    snapshot_records: tuple[SnapshotRecordView, ...]
    fix_records: tuple[FixRecordView, ...]

    def narrowed(
        self, *, vul_id: int | None = None, kb_id: int | None = None, quuid: str | None = None
    ) -> TaskView:
        """The same task seen through the lookup's filters (spec §3.2 step 6)."""
        items = tuple(
            item
            for item in self.items
            if (vul_id is None or item.vul_id == vul_id) and (kb_id is None or item.kb_id == kb_id)
        )
        item_ids = {item.id for item in items}
        fixes = tuple(
            r
            for r in self.fix_records
            if r.item_id in item_ids and (quuid is None or r.host.quuid == quuid)
        )
        hosts = {r.host.quuid for r in fixes}
        snapshots = tuple(s for s in self.snapshot_records if s.host.quuid in hosts)
        return TaskView(self.fix_id, self.created_at, items, snapshots, fixes)


@dataclass(frozen=True)
class ItemFigures:
    item: FixItemView
    records: tuple[FixRecordView, ...]
    progress: int
    fix_success_cnt: int
    fail_cnt: int


@dataclass(frozen=True)
class TaskFigures:
    view: TaskView
    items: tuple[ItemFigures, ...]
    host_cnt: int
    fix_success_cnt: int
    fix_fail_cnt: int
    snapshot_fail_cnt: int
    snapshot_progress: int
    fix_progress: int
    ended_at: datetime | None
    remaining_seconds: int
    is_retry_snapshot: bool
    is_allow_retry: bool
    # What the two figures above follow with time alone, for answering them at a later
    # moment without the records: the remaining work (None once ended), and when the
    # retry window closes (None without a failure to retry).
    remaining: RemainingWork | None
    retry_closes_at: datetime | None


def progress(done: int, total: int) -> int:
    """floor(100 x done / total); 100 exactly when everything is done (and for nothing)."""
    if total == 0 or done >= total:
        return 100
    return (100 * done) // total


def figures(
    view: TaskView, now: datetime, estimates: DurationEstimates | None = None
) -> TaskFigures:
    estimates = estimates or DurationEstimates()
    by_host: dict[str, list[FixRecordView]] = {}
    for record in view.fix_records:
        by_host.setdefault(record.host.quuid, []).append(record)
    terminal_fixes = [r for r in view.fix_records if r.status in FIX_TERMINAL]
    all_done = len(terminal_fixes) == len(view.fix_records)
    ended_at = (
        max((r.modified_at for r in view.fix_records), default=view.created_at)
        if all_done
        else None
    )
    remaining = None if all_done else RemainingWork.of(view)
    retry_closes_at = retry_window_closes_at(view)
    by_item: dict[int, list[FixRecordView]] = {item.id: [] for item in view.items}
    for record in view.fix_records:  # grouped once: a big task has 10 000s of records
        bucket = by_item.get(record.item_id)
        if bucket is not None:
            bucket.append(record)
    return TaskFigures(
        view=view,
        items=tuple(_item_figures(item, by_item[item.id]) for item in view.items),
        host_cnt=len(by_host),
        fix_success_cnt=sum(
            all(r.status == FixStatus.FIXED for r in rs) for rs in by_host.values()
        ),
        fix_fail_cnt=sum(any(r.status in FIX_FAILED for r in rs) for rs in by_host.values()),
        snapshot_fail_cnt=sum(s.status == SnapshotStatus.FAILED for s in view.snapshot_records),
        snapshot_progress=progress(
            sum(s.status in SNAPSHOT_TERMINAL for s in view.snapshot_records),
            len(view.snapshot_records),
        ),
        fix_progress=progress(len(terminal_fixes), len(view.fix_records)),
        ended_at=ended_at,
        remaining_seconds=remaining.seconds(now, estimates) if remaining is not None else 0,
        is_retry_snapshot=any(
            s.retried and s.status == SnapshotStatus.PENDING for s in view.snapshot_records
        ),
        is_allow_retry=retry_open(retry_closes_at, now),
        remaining=remaining,
        retry_closes_at=retry_closes_at,
    )


def _item_figures(item: FixItemView, records: Iterable[FixRecordView]) -> ItemFigures:
    mine = tuple(records)
    return ItemFigures(
        item=item,
        records=mine,
        progress=progress(sum(r.status in FIX_TERMINAL for r in mine), len(mine)),
        fix_success_cnt=sum(r.status == FixStatus.FIXED for r in mine),
        fail_cnt=sum(r.status in FIX_FAILED for r in mine),
    )


@dataclass(frozen=True, slots=True)
class RemainingWork:
    """RemainingTime: the largest remaining sequential work over hosts (a host runs one job
    at a time, hosts run in parallel, so the task ends when its busiest host does). Kept in a
    form that can be worked out at any moment, with any estimates, without walking the
    records again: a task's records change far less often than it is asked for."""

    # (pending snapshots, waiting fixes) of each host with nothing dispatched; equal pairs
    # weigh the same, so each distinct pair is kept once.
    settled: frozenset[tuple[int, int]]
    # The same for each host with fixes dispatched, and when each of those started.
    running: tuple[tuple[int, int, tuple[datetime, ...]], ...]

    @classmethod
    def of(cls, view: TaskView) -> RemainingWork:
        snapshots = {
            s.host.quuid: 1 for s in view.snapshot_records if s.status == SnapshotStatus.PENDING
        }
        waiting: dict[str, int] = {}
        started: dict[str, list[datetime]] = {}
        for record in view.fix_records:
            quuid = record.host.quuid
            if record.status == FixStatus.WAITING:
                waiting[quuid] = waiting.get(quuid, 0) + 1
            elif record.status == FixStatus.DISPATCHED:
                started.setdefault(quuid, []).append(record.dispatched_at or record.modified_at)
        hosts = snapshots.keys() | waiting.keys()
        return cls(
            frozenset((snapshots.get(q, 0), waiting.get(q, 0)) for q in hosts if q not in started),
            tuple(
                (snapshots.get(q, 0), waiting.get(q, 0), tuple(times))
                for q, times in started.items()
            ),
        )

    def seconds(self, now: datetime, estimates: DurationEstimates) -> int:
        snapshot, fix = estimates.snapshot_seconds, estimates.fix_seconds
        worst = max((n * snapshot + w * fix for n, w in self.settled), default=0.0)
        for pending, waiting, times in self.running:
            # A dispatched fix has the rest of a mean fix to go, and at least a second.
            left = sum(max(fix - (now - at).total_seconds(), 1.0) for at in times)
            worst = max(worst, pending * snapshot + waiting * fix + left)
        return math.ceil(worst)


def retry_open(closes_at: datetime | None, now: datetime) -> bool:
    """IsAllowRetry: a failure is still within its retry window."""
    return closes_at is not None and now <= closes_at


def retry_window_closes_at(view: TaskView) -> datetime | None:
    """When IsAllowRetry turns 0 with no change to the records: the newest failure that may
    be retried leaves the retry window. None without such a failure."""
    failed = [s.modified_at for s in view.snapshot_records if s.status == SnapshotStatus.FAILED]
    failed += [r.modified_at for r in view.fix_records if r.status == FixStatus.FAILED]
    return max(failed) + RETRY_WINDOW if failed else None
