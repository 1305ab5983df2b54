"""Budgets, cancellation, idempotent reports, retention and the retry rules."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from tests.fixing.engine_harness import TIMINGS, Harness
from vulfix.fixing import errors
from vulfix.fixing.agent_port import JobResult, SnapshotWork, UnknownJob
from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.fixing.transitions import REASON_BUDGET, REASON_CANCELLED
from vulfix.store.database import write_transaction
from vulfix.store.fixing_tables import fix_records, snapshot_records
from vulfix.store.inventory_tables import machine_snapshots
from vulfix.store.tables import to_stored


async def fleet(harness: Harness, count: int, *, snapshots: bool = False) -> list[str]:
    quuids = [f"h{n}" for n in range(count)]
    for quuid in quuids:
        await harness.add_host(quuid, snapshots=snapshots)
    await harness.add_vulnerability(7, on=quuids)
    return quuids


async def test_max_concurrency_admits_hosts_as_others_finish(harness: Harness) -> None:
    quuids = await fleet(harness, 5)
    fix_id = await harness.create([(7, quuids)], max_concurrency="40%")  # ceil(2.0) = 2
    started = [q for q in quuids if await harness.poll(q) is not None]
    assert started == ["h0", "h1"]
    await harness.finish("h0")
    assert await harness.poll("h2") is not None
    for quuid in quuids:
        await harness.drain(quuid)
    assert (await harness.status(fix_id=fix_id)).fix_success_cnt == 5


async def test_max_errors_stops_untouched_hosts_once_exceeded(harness: Harness) -> None:
    quuids = await fleet(harness, 4)
    fix_id = await harness.create([(7, quuids)], max_concurrency="1", max_errors="0")
    await harness.finish("h0", "failure", "E: Unable to locate package")
    status = await harness.status(fix_id=fix_id)
    reasons = {r.host.quuid: (r.status, r.fail_reason) for r in status.view.fix_records}
    assert reasons["h0"] == (FixStatus.FAILED, "E: Unable to locate package")
    for quuid in ("h1", "h2", "h3"):
        assert reasons[quuid] == (FixStatus.FAILED, REASON_BUDGET)
        assert await harness.poll(quuid) is None
    assert status.ended_at is not None and status.fix_fail_cnt == 4


async def test_malformed_budgets_are_refused(harness: Harness) -> None:
    quuids = await fleet(harness, 1)
    for budget in ("abc", "150%", "-1", "1.5"):
        with pytest.raises(errors.MalformedBudget):
            await harness.create([(7, quuids)], max_errors=budget)


async def test_cancel_stops_what_has_not_started_and_lets_running_work_report(
    harness: Harness,
) -> None:
    quuids = await fleet(harness, 3, snapshots=True)
    fix_id = await harness.create([(7, quuids)])
    running = await harness.poll("h0")
    assert running is not None
    await harness.store.cancel(harness.account_id, fix_id, harness.clock.now())
    assert await harness.poll("h1") is None
    status = await harness.status(fix_id=fix_id)
    h1 = next(s for s in status.view.snapshot_records if s.host.quuid == "h1")
    assert h1.status == SnapshotStatus.FAILED and h1.fail_reason == REASON_CANCELLED
    ack = await harness.store.report(
        harness.hosts["h0"], running.job_id, JobResult("success"), harness.clock.now()
    )
    assert ack.applied
    with pytest.raises(errors.RecordNotRetryable):
        await harness.store.cancel(harness.account_id, fix_id, harness.clock.now())


async def test_a_resent_report_is_acknowledged_but_never_applied_twice(harness: Harness) -> None:
    quuids = await fleet(harness, 1)
    await harness.create([(7, quuids)])
    job = await harness.poll("h0")
    assert job is not None
    result = JobResult("failure", "first", 1)
    first = await harness.store.report(harness.hosts["h0"], job.job_id, result, harness.clock.now())
    again = await harness.store.report(
        harness.hosts["h0"], job.job_id, JobResult("success"), harness.clock.now()
    )
    assert first.applied and not again.applied and again.detail == "already applied"
    status = await harness.status(vul_id=7)
    assert status.view.fix_records[0].fail_reason == "first"


async def test_another_hosts_job_is_unknown(harness: Harness) -> None:
    quuids = await fleet(harness, 2)
    await harness.create([(7, quuids)])
    job = await harness.poll("h0")
    assert job is not None
    with pytest.raises(UnknownJob):
        await harness.store.report(
            harness.hosts["h1"], job.job_id, JobResult("success"), harness.clock.now()
        )


async def test_expired_snapshots_are_deleted_through_the_agent(harness: Harness) -> None:
    quuids = await fleet(harness, 1, snapshots=True)
    await harness.create([(7, quuids)], save_days=2)
    await harness.drain("h0")
    harness.clock.advance(2 * 86400 + 1)
    await harness.set_online("h0", True)
    await harness.store.sweep(harness.clock.now())
    job = await harness.poll("h0")
    assert job is not None and type(job.work).__name__ == "SnapshotDeleteWork"
    assert job.work.provider_ref == "ref"  # type: ignore[union-attr]
    await harness.finish("h0")
    await harness.store.sweep(harness.clock.now())
    assert await harness.poll("h0") is None


@pytest.mark.parametrize("take_next", [True, False], ids=["with-the-report", "by-poll"])
async def test_a_hosts_work_comes_snapshot_first_then_fix_then_expired_snapshot_delete(
    harness: Harness, take_next: bool
) -> None:
    quuids = await fleet(harness, 1, snapshots=True)
    await harness.add_vulnerability(8, on=quuids)
    await harness.create([(7, quuids)], save_days=2)
    await harness.drain("h0")
    harness.clock.advance(2 * 86400 + 1)  # the first task's snapshot is past its SaveDays
    await harness.set_online("h0", True)
    await harness.create([(8, quuids)], save_days=2)
    host, success = harness.hosts["h0"], JobResult("success", provider_ref="ref")
    kinds = []
    job = await harness.poll("h0")
    while job is not None:
        kinds.append(type(job.work).__name__)
        now = harness.clock.now()
        if take_next:
            _ack, job = await harness.store.report_and_take_next(host, job.job_id, success, now)
        else:
            await harness.store.report(host, job.job_id, success, now)
            job = await harness.poll("h0")
    assert kinds == ["SnapshotWork", "FixWork", "SnapshotDeleteWork"]


async def test_a_queued_delete_of_a_snapshot_already_gone_is_withdrawn_at_claim(
    harness: Harness,
) -> None:
    quuids = await fleet(harness, 1, snapshots=True)
    await harness.create([(7, quuids)], save_days=2)
    await harness.drain("h0")
    harness.clock.advance(2 * 86400 + 1)
    await harness.set_online("h0", True)
    await harness.store.sweep(harness.clock.now())  # queues the delete
    async with write_transaction(harness.store.engine) as conn:  # whatever deleted it
        await conn.execute(
            update(machine_snapshots).values(deleted_at=to_stored(harness.clock.now()))
        )
    assert await harness.poll("h0") is None
    assert await harness.poll("h0") is None, "and nothing was queued in its place"


async def test_retry_rules_answer_with_the_documented_failures(harness: Harness) -> None:
    quuids = await fleet(harness, 2, snapshots=True)
    fix_id = await harness.create([(7, quuids)])
    status = await harness.status(fix_id=fix_id)
    snapshot = {s.host.quuid: s.id for s in status.view.snapshot_records}
    now = harness.clock.now()
    store, account = harness.store, harness.account_id
    with pytest.raises(errors.RecordBusy):
        await store.retry_snapshot(account, fix_id, "h0", snapshot["h0"], now)
    with pytest.raises(errors.RecordNotFound):
        await store.retry_snapshot(account, fix_id, "h0", snapshot["h1"], now)
    with pytest.raises(errors.RecordNotFound):
        await store.retry_snapshot(account, 999, "h0", snapshot["h0"], now)
    with pytest.raises(errors.RecordNotFound):
        await store.retry_fix(account, fix_id, "nobody", 7, None, now)
    await harness.finish("h0", "failure", "snapshot quota")
    with pytest.raises(errors.RecordBlocked):
        await store.retry_fix(account, fix_id, "h0", 7, None, now)
    await harness.drain("h1")
    with pytest.raises(errors.RecordNotRetryable):
        await store.retry_fix(account, fix_id, "h1", 7, None, now)
    with pytest.raises(errors.RecordNotRetryable):
        await store.retry_snapshot(account, fix_id, "h1", snapshot["h1"], now)


async def test_snapshot_quota_limits_retries(harness: Harness) -> None:
    quuids = await fleet(harness, 1, snapshots=True)
    for vul in (8, 9, 10):
        await harness.add_vulnerability(vul, on=quuids)
        await harness.create([(vul, quuids)], save_days=30)
        await harness.drain("h0")
    fix_id = await harness.create([(7, quuids)], save_days=30)
    await harness.finish("h0", "failure", "lvcreate: insufficient free space")
    record = (await harness.status(fix_id=fix_id)).view.snapshot_records[0]
    with pytest.raises(errors.SnapshotQuotaExhausted):
        await harness.store.retry_snapshot(
            harness.account_id, fix_id, "h0", record.id, harness.clock.now()
        )


async def test_lookup_by_vulnerability_and_host_narrows_lists_and_counts(harness: Harness) -> None:
    quuids = await fleet(harness, 2)
    await harness.add_vulnerability(8, on=quuids)
    first = await harness.create([(7, ["h0"])])
    second = await harness.create([(7, ["h1"]), (8, quuids)])
    assert (await harness.status(vul_id=7)).view.fix_id == second
    by_host = await harness.status(vul_id=7, quuid="h0")
    assert by_host.view.fix_id == first and by_host.host_cnt == 1
    narrowed = await harness.status(fix_id=second, quuid="h1")
    assert narrowed.host_cnt == 1 and len(narrowed.view.fix_records) == 2
    assert all(r.host.quuid == "h1" for r in narrowed.view.fix_records)
    only_8 = await harness.status(fix_id=second, vul_id=8)
    assert [i.vul_id for i in only_8.view.items] == [8] and only_8.host_cnt == 2
    with pytest.raises(errors.TaskNotFound):
        await harness.status(vul_id=8, quuid="nobody")
    with pytest.raises(errors.LookupIncomplete):
        await harness.status(quuid="h0")


async def test_cancel_hands_a_withdrawn_host_its_work_in_other_tasks(harness: Harness) -> None:
    quuids = await fleet(harness, 1)
    await harness.add_vulnerability(8, on=quuids)
    first = await harness.create([(7, quuids)])
    second = await harness.create([(8, quuids)])  # h0 is busy: its job waits for the first
    await harness.store.cancel(harness.account_id, first, harness.clock.now())
    assert harness.hosts["h0"].host_id in harness.woken[-1:]
    await harness.drain("h0")
    assert (await harness.status(fix_id=second)).fix_success_cnt == 1


async def test_a_queued_job_whose_record_moved_on_is_withdrawn_at_claim(harness: Harness) -> None:
    """As when one replica queues a fix while another fails its record (PostgreSQL)."""
    quuids = await fleet(harness, 1)
    await harness.add_vulnerability(8, on=quuids)
    fix_id = await harness.create([(7, quuids), (8, quuids)])
    status = await harness.status(fix_id=fix_id)
    queued_for = min(r.id for r in status.view.fix_records)
    async with write_transaction(harness.store.engine) as conn:
        await conn.execute(
            update(fix_records)
            .where(fix_records.c.id == queued_for)
            .values(status=int(FixStatus.FAILED), fail_reason="moved on")
        )
    harness.woken.clear()

    assert await harness.poll("h0") is None
    assert harness.woken == [harness.hosts["h0"].host_id]  # its long poll comes back at once
    job = await harness.poll("h0")
    assert job is not None and job.work.vul_id == 8  # type: ignore[union-attr]
    await harness.finish("h0")
    figures = await harness.status(fix_id=fix_id)
    assert [r.status for r in figures.view.fix_records] == [FixStatus.FAILED, FixStatus.FIXED]


async def test_the_dispatch_timeout_skips_a_record_that_moved_on(harness: Harness) -> None:
    quuids = await fleet(harness, 1)
    fix_id = await harness.create([(7, quuids)])
    (record,) = (await harness.status(fix_id=fix_id)).view.fix_records
    async with write_transaction(harness.store.engine) as conn:
        await conn.execute(
            update(fix_records)
            .where(fix_records.c.id == record.id)
            .values(status=int(FixStatus.FAILED), fail_reason="moved on")
        )
    harness.clock.advance(TIMINGS.dispatch_timeout + 1)

    figures = await harness.store.sweep(harness.clock.now())

    assert figures.dispatch_timeouts == 1
    (after,) = (await harness.status(fix_id=fix_id)).view.fix_records
    assert (after.status, after.fail_reason) == (FixStatus.FAILED, "moved on")


async def test_a_report_for_a_record_that_moved_on_is_acknowledged_not_applied(
    harness: Harness,
) -> None:
    quuids = await fleet(harness, 1, snapshots=True)
    fix_id = await harness.create([(7, quuids)])
    job = await harness.poll("h0")
    assert job is not None and isinstance(job.work, SnapshotWork)
    async with write_transaction(harness.store.engine) as conn:  # whatever moved it on
        await conn.execute(
            update(snapshot_records)
            .where(snapshot_records.c.fix_id == fix_id)
            .values(status=int(SnapshotStatus.CREATED))
        )
    done = JobResult("success", provider_ref="vg0/vulfix-late")
    ack = await harness.store.report(harness.hosts["h0"], job.job_id, done, harness.clock.now())
    assert not ack.applied and ack.detail == "not applied: the snapshot record is already created"
    async with write_transaction(harness.store.engine) as conn:
        kept = (await conn.execute(select(machine_snapshots.c.provider_ref))).scalars().all()
    assert kept == ["vg0/vulfix-late"], "the snapshot the host took is kept, for retention"
    again = await harness.store.report(harness.hosts["h0"], job.job_id, done, harness.clock.now())
    assert again.detail == "already applied"
