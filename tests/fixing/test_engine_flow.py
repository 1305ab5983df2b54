"""The engine end to end on a real database: snapshot first, then fixes, one job per host."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from tests.fixing.engine_harness import TIMINGS, Harness, make_harness
from vulfix.fixing.agent_port import FixWork, JobResult, PackageTarget
from vulfix.fixing.errors import CannotAutoFix, InvalidFixRequest
from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.fixing.task_status import TaskLookup
from vulfix.store.database import write_transaction
from vulfix.store.inventory_tables import machine_snapshots, vulnerabilities
from vulfix.store.migrate import upgrade


async def test_a_task_snapshots_each_host_then_fixes_every_vulnerability(harness: Harness) -> None:
    for quuid in ("h1", "h2"):
        await harness.add_host(quuid)
    await harness.add_vulnerability(101, on=["h1", "h2"])
    await harness.add_vulnerability(102, on=["h1"])
    fix_id = await harness.create([(101, ["h1", "h2"]), (102, ["h1"])])

    status = await harness.status(fix_id=fix_id)
    assert (status.host_cnt, status.fix_progress, status.snapshot_progress) == (2, 0, 0)
    assert {s.status for s in status.view.snapshot_records} == {SnapshotStatus.PENDING}
    assert await harness.finding_state("h1", 101) == 5

    first = await harness.poll("h1")
    assert first is not None and type(first.work).__name__ == "SnapshotWork"
    again = await harness.poll("h1")
    assert again is not None and again.job_id == first.job_id  # a leased job is handed out again

    assert await harness.drain("h1") == 3  # snapshot, fix 101, fix 102
    status = await harness.status(fix_id=fix_id)
    assert status.fix_progress == 66 and status.ended_at is None and status.fix_success_cnt == 1
    assert await harness.drain("h2") == 2
    status = await harness.status(fix_id=fix_id)
    assert status.fix_progress == 100 and status.snapshot_progress == 100
    assert status.ended_at is not None and status.remaining_seconds == 0
    assert (status.fix_success_cnt, status.fix_fail_cnt) == (2, 0)
    assert all(s.snapshot_id.startswith("snap-") for s in status.view.snapshot_records)
    assert await harness.finding_state("h1", 102) == 6


async def test_a_snapshot_taken_is_recorded_with_its_task_and_host(harness: Harness) -> None:
    await harness.add_host("h1")
    await harness.add_vulnerability(7, on=["h1"])
    fix_id = await harness.create([(7, ["h1"])], save_days=3, snapshot_name="before-7")
    await harness.finish("h1", seconds=5)

    async with write_transaction(harness.store.engine) as conn:
        (row,) = (await conn.execute(select(machine_snapshots))).all()
    assert (row.fix_id, row.host_id) == (fix_id, harness.hosts["h1"].host_id)
    assert (row.snapshot_name, row.disk_id, row.provider_ref) == ("before-7", "disk-h1", "ref")
    assert row.expires_at - row.created_at == timedelta(days=3)
    assert row.created_at == harness.clock.now().replace(tzinfo=None)
    (record,) = (await harness.status(fix_id=fix_id)).view.snapshot_records
    assert record.snapshot_id == row.snapshot_id


async def test_a_failed_snapshot_blocks_its_host_and_a_retry_recovers_it(harness: Harness) -> None:
    await harness.add_host("h1")
    await harness.add_vulnerability(7, on=["h1"])
    fix_id = await harness.create([(7, ["h1"])])
    await harness.finish("h1", "failure", "disk full")
    status = await harness.status(fix_id=fix_id)
    assert status.view.snapshot_records[0].status == SnapshotStatus.FAILED
    assert status.view.fix_records[0].status == FixStatus.SNAPSHOT_FAILED
    assert status.fix_progress == 100 and status.fix_fail_cnt == 1 and status.is_allow_retry
    assert await harness.poll("h1") is None

    record_id = status.view.snapshot_records[0].id
    await harness.store.retry_snapshot(
        harness.account_id, fix_id, "h1", record_id, harness.clock.now()
    )
    status = await harness.status(fix_id=fix_id)
    assert status.is_retry_snapshot and status.ended_at is None and status.fix_progress == 0
    assert await harness.drain("h1") == 2
    status = await harness.status(fix_id=fix_id)
    assert (
        status.fix_success_cnt == 1 and status.fix_progress == 100 and not status.is_retry_snapshot
    )


async def test_a_failed_fix_is_retried_with_retry_vul_fix(harness: Harness) -> None:
    await harness.add_host("h1")
    await harness.add_vulnerability(7, on=["h1"])
    fix_id = await harness.create([(7, ["h1"])], save_days=1)
    await harness.finish("h1")
    await harness.finish("h1", "failure", "dpkg: error processing package libexample")
    status = await harness.status(fix_id=fix_id)
    assert status.view.fix_records[0].status == FixStatus.FAILED
    assert await harness.finding_state("h1", 7) == 9
    await harness.store.retry_fix(harness.account_id, fix_id, "h1", 7, None, harness.clock.now())
    assert await harness.finding_state("h1", 7) == 5
    assert await harness.drain("h1") == 1
    assert (await harness.status(fix_id=fix_id)).fix_success_cnt == 1


async def test_hosts_without_snapshot_support_are_fixed_without_one(harness: Harness) -> None:
    await harness.add_host("bm", snapshots=False)
    await harness.add_vulnerability(7, on=["bm"])
    fix_id = await harness.create([(7, ["bm"])])
    status = await harness.status(fix_id=fix_id)
    assert status.view.snapshot_records[0].status == SnapshotStatus.NOT_SUPPORTED
    job = await harness.poll("bm")
    assert job is not None and type(job.work).__name__ == "FixWork"


async def test_save_days_zero_needs_a_recent_snapshot_on_capable_hosts(harness: Harness) -> None:
    await harness.add_host("h1")
    await harness.add_host("bm", snapshots=False)
    await harness.add_vulnerability(7, on=["h1", "bm"])
    await harness.add_vulnerability(8, on=["h1"])
    with pytest.raises(InvalidFixRequest, match="h1"):
        await harness.create([(7, ["h1", "bm"])], save_days=0)
    fix_id = await harness.create([(7, ["h1"])], save_days=1)
    await harness.drain("h1")
    harness.clock.advance(3600)
    await harness.set_online("h1", True)  # its agent kept heartbeating meanwhile
    second = await harness.create([(8, ["h1"])], save_days=0)
    status = await harness.status(fix_id=second)
    assert status.view.snapshot_records[0].status == SnapshotStatus.NOT_NEEDED
    assert second > fix_id
    harness.clock.advance(25 * 3600)
    await harness.set_online("h1", True)
    await harness.add_vulnerability(9, on=["h1"])
    with pytest.raises(InvalidFixRequest, match="24 hours"):
        await harness.create([(9, ["h1"])], save_days=0)


async def test_requests_are_checked_whole_before_anything_is_created(harness: Harness) -> None:
    await harness.add_host("h1")
    await harness.add_host("off", online=False)
    await harness.add_vulnerability(7, on=["h1", "off"])
    with pytest.raises(InvalidFixRequest, match="nope"):
        await harness.create([(7, ["h1", "nope"])])
    with pytest.raises(CannotAutoFix, match="off"):
        await harness.create([(7, ["h1", "off"])])
    with pytest.raises(InvalidFixRequest, match="Unknown VulId"):
        await harness.create([(99, ["h1"])])
    assert await harness.finding_state("h1", 7) == 1
    fix_id = await harness.create([(7, ["h1"])])
    with pytest.raises(InvalidFixRequest, match="not pending"):
        await harness.create([(7, ["h1"])])
    assert fix_id == 1


async def test_an_expired_lease_fails_the_record_with_a_clear_reason(harness: Harness) -> None:
    await harness.add_host("h1", snapshots=False)
    await harness.add_vulnerability(7, on=["h1"])
    fix_id = await harness.create([(7, ["h1"])])
    assert await harness.poll("h1") is not None
    harness.clock.advance(61)
    figures = await harness.store.sweep(harness.clock.now())
    assert figures.leases_expired == 1
    record = (await harness.status(fix_id=fix_id)).view.fix_records[0]
    assert record.status == FixStatus.FAILED and "agent lost contact" in record.fail_reason


async def test_a_job_nobody_picks_up_times_out_for_the_whole_host(harness: Harness) -> None:
    await harness.add_host("h1", snapshots=False)
    await harness.add_vulnerability(7, on=["h1"])
    await harness.add_vulnerability(8, on=["h1"])
    fix_id = await harness.create([(7, ["h1"]), (8, ["h1"])])
    harness.clock.advance(301)
    figures = await harness.store.sweep(harness.clock.now())
    assert figures.dispatch_timeouts == 1
    status = await harness.status(fix_id=fix_id)
    assert {r.status for r in status.view.fix_records} == {FixStatus.FAILED}
    assert all("agent offline" in r.fail_reason for r in status.view.fix_records)
    assert status.ended_at is not None


async def test_remaining_time_follows_observed_job_durations(harness: Harness) -> None:
    await harness.add_host("done", snapshots=False)
    await harness.add_vulnerability(7, on=["done"])
    await harness.create([(7, ["done"])])
    await harness.finish("done", seconds=30)  # one observed fix: 30 s
    quuids = ["a", "b"]
    for quuid in quuids:
        await harness.add_host(quuid, snapshots=False)
    await harness.add_vulnerability(8, on=quuids)
    await harness.add_vulnerability(9, on=["a"])
    fix_id = await harness.create([(8, quuids), (9, ["a"])])
    # Host "a" has two fixes ahead of it, "b" one: the busiest host sets the remaining time.
    assert (await harness.status(fix_id=fix_id)).remaining_seconds == 60
    await harness.finish("a", seconds=30)
    assert (await harness.status(fix_id=fix_id)).remaining_seconds == 30
    await harness.drain("a")
    await harness.drain("b")
    assert (await harness.status(fix_id=fix_id)).remaining_seconds == 0


async def test_an_idle_hosts_poll_never_waits_for_the_write_lock(tmp_path: Path) -> None:
    """Most polls find nothing to do; they only read, so another process holding SQLite's
    write lock (a CLI import, say) does not hold up a fleet of idle agents."""
    path = tmp_path / "vulfix.db"
    upgrade(f"sqlite:///{path}")
    harness = await make_harness(f"sqlite:///{path}")
    await harness.add_host("idle")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        assert await harness.poll("idle") is None
        assert time.monotonic() - started < 1, "waited for the write lock"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        await harness.store.engine.dispose()


async def test_a_report_wakes_its_host_unless_the_agent_takes_the_next_job_itself(
    harness: Harness,
) -> None:
    host = await harness.add_host("h1")
    await harness.add_vulnerability(101, on=["h1"])
    await harness.create([(101, ["h1"])])
    snapshot = await harness.poll("h1")
    assert snapshot is not None
    harness.woken.clear()
    success = JobResult("success", "", 0, "", "ref", 1)
    ack, fix = await harness.store.report_and_take_next(
        host, snapshot.job_id, success, harness.clock.now()
    )
    assert ack.applied and harness.woken == [], "the agent took its next job at once"
    assert fix is not None and type(fix.work).__name__ == "FixWork"
    assert await harness.poll("h1") == fix, "the fix is leased to the host"
    await harness.store.report(host, fix.job_id, success, harness.clock.now())
    assert await harness.poll("h1") is None

    await harness.add_vulnerability(102, on=["h1"])
    await harness.create([(102, ["h1"])])
    snapshot = await harness.poll("h1")
    assert snapshot is not None
    harness.woken.clear()
    await harness.store.report(host, snapshot.job_id, success, harness.clock.now())
    assert harness.woken == [host.host_id], "a polling agent is woken for its next job"


async def test_a_fix_job_asks_for_its_vulnerabilitys_packages_and_service(
    harness: Harness,
) -> None:
    host = await harness.add_host("h1")
    await harness.add_vulnerability(7, on=["h1"])
    await harness.add_vulnerability(8, on=["h1"])
    await harness.create([(7, ["h1"]), (8, ["h1"])])
    snapshot = await harness.poll("h1")
    assert snapshot is not None
    success = JobResult("success", "", 0, "", "ref", 1)
    _ack, fix = await harness.store.report_and_take_next(
        host, snapshot.job_id, success, harness.clock.now()
    )
    assert fix is not None and isinstance(fix.work, FixWork) and fix.work.vul_id == 7
    assert fix.work.packages == (PackageTarget("libexample", "1.2.3"),)
    assert fix.work.service == "exampled"
    assert await harness.poll("h1") == fix, "a poll is asked the same"

    async with write_transaction(harness.store.engine) as conn:  # 8 leaves the inventory
        await conn.execute(delete(vulnerabilities).where(vulnerabilities.c.vul_id == 8))
    _ack, last = await harness.store.report_and_take_next(
        host, fix.job_id, success, harness.clock.now()
    )
    assert last is not None and isinstance(last.work, FixWork) and last.work.vul_id == 8
    assert (last.work.packages, last.work.service) == ((), "")
    assert await harness.poll("h1") == last


async def test_a_job_taken_with_a_report_is_dispatched_and_its_lease_runs_out_like_any(
    harness: Harness,
) -> None:
    host = await harness.add_host("h1")
    await harness.add_vulnerability(7, on=["h1"])
    fix_id = await harness.create([(7, ["h1"])])
    snapshot = await harness.poll("h1")
    assert snapshot is not None
    success = JobResult("success", "", 0, "", "ref", 1)
    _ack, fix = await harness.store.report_and_take_next(
        host, snapshot.job_id, success, harness.clock.now()
    )
    assert fix is not None and fix.lease_seconds == TIMINGS.lease_seconds
    record = (await harness.status(fix_id=fix_id)).view.fix_records[0]
    assert record.status == FixStatus.DISPATCHED
    harness.clock.advance(TIMINGS.lease_seconds + 1)
    assert (await harness.store.sweep(harness.clock.now())).leases_expired == 1
    record = (await harness.status(fix_id=fix_id)).view.fix_records[0]
    assert record.status == FixStatus.FAILED and "agent lost contact" in record.fail_reason


async def test_a_host_finishing_with_its_report_admits_the_next_under_max_concurrency(
    harness: Harness,
) -> None:
    first = await harness.add_host("h1", snapshots=False)
    second = await harness.add_host("h2", snapshots=False)
    await harness.add_vulnerability(7, on=["h1", "h2"])
    fix_id = await harness.create([(7, ["h1", "h2"])], max_concurrency="1")
    fix = await harness.poll("h1")
    assert fix is not None and await harness.poll("h2") is None
    harness.woken.clear()
    success = JobResult("success", "", 0, "", "ref", 1)
    ack, after = await harness.store.report_and_take_next(
        first, fix.job_id, success, harness.clock.now()
    )
    assert ack.applied and after is None
    assert harness.woken == [second.host_id], "the admitted host is woken"
    assert await harness.poll("h2") is not None
    assert (await harness.status(fix_id=fix_id)).fix_success_cnt == 1


async def test_agent_operations_bump_their_tasks_version_once_per_transaction(
    harness: Harness,
) -> None:
    hosts = [await harness.add_host(quuid) for quuid in ("h1", "h2")]
    await harness.add_vulnerability(7, on=["h1", "h2"])
    fix_id = await harness.create([(7, ["h1", "h2"])])
    snapshots = [await harness.poll(quuid) for quuid in ("h1", "h2")]

    async def version() -> int:
        found = await harness.reader.version(harness.account_id, TaskLookup(fix_id=fix_id))
        assert found is not None
        return found[1]

    before = await version()
    success = JobResult("success", "", 0, "", "ref", 1)
    # Each report moves two records of the task (the snapshot made, the fix dispatched).
    answers = await asyncio.gather(
        *(
            harness.store.report_and_take_next(host, job.job_id, success, harness.clock.now())
            for host, job in zip(hosts, snapshots, strict=True)
            if job is not None
        )
    )
    assert all(fix is not None for _ack, fix in answers)
    # SQLite commits the two together; PostgreSQL commits each on its own.
    expected = 1 if harness.store.engine.dialect.name == "sqlite" else 2
    assert await version() == before + expected
    figures = await harness.status(fix_id=fix_id)
    assert figures.view.fix_records[0].status == FixStatus.DISPATCHED


async def test_a_woken_poll_gets_the_hosts_job_and_nothing_when_there_is_none(
    harness: Harness,
) -> None:
    host = await harness.add_host("h1")
    await harness.add_vulnerability(7, on=["h1"])
    assert await harness.store.next_job(host, harness.clock.now(), woken=True) is None
    await harness.create([(7, ["h1"])])
    job = await harness.store.next_job(host, harness.clock.now(), woken=True)
    assert job is not None and type(job.work).__name__ == "SnapshotWork"
    assert await harness.poll("h1") == job, "leased as any poll leases it"
