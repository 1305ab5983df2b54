"""The figures of DescribeVulFixStatus, computed from records alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.fixing.task_view import (
    DurationEstimates,
    FixItemView,
    FixRecordView,
    HostRef,
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
