"""The figures of DescribeVulFixStatus, computed from records alone."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.fixing.task_view import (
    DurationEstimates,
    FixItemView,
    FixRecordView,
    HostRef,
    RemainingWork,
    SnapshotRecordView,
    TaskView,
    figures,
    progress,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ITEM = FixItemView(1, 7, "libfoo", 0)


def host(name: str) -> HostRef:
    return HostRef(name, name, "10.0.0.1", "CVM")


def view(
    fix: list[tuple[str, FixStatus]], snap: dict[str, SnapshotStatus], **record: object
) -> TaskView:
    snapshots = tuple(
        SnapshotRecordView(n, host(q), "s", "", status, "", NOW, **record)  # type: ignore[arg-type]
        for n, (q, status) in enumerate(snap.items())
    )
    records = tuple(
        FixRecordView(n, 1, host(q), status, "", NOW) for n, (q, status) in enumerate(fix)
    )
    return TaskView(1, NOW - timedelta(hours=1), (ITEM,), snapshots, records)


def test_progress_floors_and_is_100_only_when_everything_is_done() -> None:
    assert [progress(d, 3) for d in range(4)] == [0, 33, 66, 100]
    assert progress(199, 200) == 99


def test_counts_are_per_host_and_add_up() -> None:
    figures_ = figures(
        view(
            [
                ("a", FixStatus.FIXED),
                ("b", FixStatus.FAILED),
                ("c", FixStatus.SNAPSHOT_FAILED),
                ("d", FixStatus.WAITING),
            ],
            {
                "a": SnapshotStatus.CREATED,
                "b": SnapshotStatus.CREATED,
                "c": SnapshotStatus.FAILED,
                "d": SnapshotStatus.PENDING,
            },
        ),
        NOW,
    )
    assert (figures_.host_cnt, figures_.fix_success_cnt, figures_.fix_fail_cnt) == (4, 1, 2)
    assert (
        figures_.snapshot_fail_cnt == 1
        and figures_.snapshot_progress == 75
        and figures_.fix_progress == 75
    )
    assert figures_.ended_at is None and figures_.is_allow_retry


def test_remaining_time_is_the_busiest_hosts_work_and_counts_down_while_running() -> None:
    estimates = DurationEstimates(snapshot_seconds=40, fix_seconds=100)
    running = FixRecordView(
        1, 1, host("a"), FixStatus.DISPATCHED, "", NOW, dispatched_at=NOW - timedelta(seconds=30)
    )
    waiting = FixRecordView(2, 1, host("b"), FixStatus.WAITING, "", NOW)
    snapshots = (
        SnapshotRecordView(1, host("a"), "s", "", SnapshotStatus.CREATED, "", NOW),
        SnapshotRecordView(2, host("b"), "s", "", SnapshotStatus.PENDING, "", NOW),
    )
    task = TaskView(1, NOW, (ITEM,), snapshots, (running, waiting))
    assert figures(task, NOW, estimates).remaining_seconds == 140  # b: snapshot 40 + fix 100
    late = NOW + timedelta(seconds=500)
    overdue = figures(TaskView(1, NOW, (ITEM,), snapshots[:1], (running,)), late, estimates)
    assert overdue.remaining_seconds == 1  # never 0 while something is still running


def test_retry_is_allowed_for_seven_days_after_a_failure() -> None:
    failed = view([("a", FixStatus.FAILED)], {"a": SnapshotStatus.CREATED})
    assert figures(failed, NOW + timedelta(days=6)).is_allow_retry
    assert not figures(failed, NOW + timedelta(days=8)).is_allow_retry


def test_a_retried_snapshot_still_pending_sets_is_retry_snapshot() -> None:
    retried = view([("a", FixStatus.WAITING)], {"a": SnapshotStatus.PENDING}, retried=True)
    assert figures(retried, NOW).is_retry_snapshot
    finished = figures(view([("a", FixStatus.FIXED)], {"a": SnapshotStatus.CREATED}), NOW)
    assert (
        finished.ended_at == NOW
        and finished.fix_progress == 100
        and finished.remaining_seconds == 0
    )


def walk_remaining(view: TaskView, now: datetime, estimates: DurationEstimates) -> float:
    """RemainingTime by its definition, record by record (the oracle for `RemainingWork`)."""
    work: dict[str, float] = {
        s.host.quuid: estimates.snapshot_seconds
        for s in view.snapshot_records
        if s.status == SnapshotStatus.PENDING
    }
    for r in view.fix_records:
        if r.status == FixStatus.WAITING:
            cost = estimates.fix_seconds
        elif r.status == FixStatus.DISPATCHED:
            started = r.dispatched_at or r.modified_at
            cost = max(estimates.fix_seconds - (now - started).total_seconds(), 1.0)
        else:
            continue
        work[r.host.quuid] = work.get(r.host.quuid, 0.0) + cost
    return max(work.values(), default=0.0)


@given(
    fixes=st.lists(
        st.tuples(
            st.sampled_from("abcdef"),
            st.sampled_from([FixStatus.WAITING, FixStatus.DISPATCHED, FixStatus.FIXED]),
            st.integers(0, 400),
        ),
        max_size=25,
    ),
    pending=st.sets(st.sampled_from("abcdefg")),
    later=st.integers(0, 1000),
    snapshot_seconds=st.integers(1, 300),
    fix_seconds=st.integers(1, 600),
)
def test_remaining_work_kept_from_a_view_answers_as_a_fresh_walk_at_any_moment(
    fixes: list[tuple[str, FixStatus, int]],
    pending: set[str],
    later: int,
    snapshot_seconds: int,
    fix_seconds: int,
) -> None:
    records = tuple(
        FixRecordView(n, 1, host(q), status, "", NOW, dispatched_at=NOW - timedelta(seconds=ago))
        for n, (q, status, ago) in enumerate(fixes)
    )
    snapshots = tuple(
        SnapshotRecordView(n, host(q), "s", "", SnapshotStatus.PENDING, "", NOW)
        for n, q in enumerate(sorted(pending))
    )
    task = TaskView(1, NOW, (ITEM,), snapshots, records)
    kept = RemainingWork.of(task)  # kept at NOW, asked later with other estimates
    moment = NOW + timedelta(seconds=later)
    estimates = DurationEstimates(snapshot_seconds, fix_seconds)
    assert kept.seconds(moment, estimates) == math.ceil(walk_remaining(task, moment, estimates))
