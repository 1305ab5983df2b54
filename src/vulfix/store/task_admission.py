"""A task's admission window: waiting hosts let in as others finish (`MaxConcurrency`), or
stopped once the error budget (`MaxErrors`) is spent. Only tasks with budgets have waiting
hosts; without them every host is admitted when the task is created."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, and_, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.fixing import transitions
from vulfix.fixing.budgets import Budget, has_budgets
from vulfix.fixing.statuses import FIX_FAILED, FIX_UNFINISHED, FixStatus, SnapshotStatus
from vulfix.store import hot_statements as hot
from vulfix.store.bounded_in import any_of
from vulfix.store.fixing_tables import fix_records, snapshot_records
from vulfix.store.record_updates import set_fix_statuses, set_snapshot_status
from vulfix.store.tables import fix_tasks

_TASK_BUDGETS = select(
    fix_tasks.c.max_concurrency, fix_tasks.c.max_errors, fix_tasks.c.cancelled_at
).where(fix_tasks.c.fix_id == bindparam("fix_id"))


async def admit_hosts(conn: AsyncConnection, fix_id: int, now: datetime) -> list[int]:
    """Lets waiting hosts into the task's concurrency window, unless the error budget is
    spent, in which case the hosts never started fail instead. Returns newly admitted hosts."""
    task = (await hot.run(conn, _TASK_BUDGETS, {"fix_id": fix_id})).one()
    # Without budgets every host was admitted when the task was created: nothing to do (and
    # this runs each time a host finishes, so it must not read the whole task every time).
    if task.cancelled_at is not None or not has_budgets(task.max_concurrency, task.max_errors):
        return []
    waiting_query = select(snapshot_records.c.host_id).where(
        snapshot_records.c.fix_id == fix_id, snapshot_records.c.admitted.is_(False)
    )
    waiting = [int(h) for h in (await conn.execute(waiting_query)).scalars()]
    if not waiting:
        return []
    count_query = select(func.count()).where(snapshot_records.c.fix_id == fix_id)
    host_count = int((await conn.execute(count_query)).scalar_one())
    if Budget.parse(task.max_errors, "MaxErrors").exceeded(
        await failed_hosts(conn, fix_id), host_count
    ):
        await stop_untouched_hosts(conn, fix_id, waiting, transitions.REASON_BUDGET, now)
        return []
    active = await active_hosts(conn, fix_id)
    room = Budget.parse(task.max_concurrency, "MaxConcurrency").concurrency(host_count) - active
    chosen = waiting[: max(room, 0)]
    if chosen:
        await _admit(conn, fix_id, chosen)
    return chosen


async def failed_hosts(conn: AsyncConnection, fix_id: int) -> int:
    query = select(func.count(func.distinct(fix_records.c.host_id))).where(
        fix_records.c.fix_id == fix_id,
        any_of(fix_records.c.status, [int(s) for s in FIX_FAILED]),
        fix_records.c.fail_reason != transitions.REASON_BUDGET,
    )
    return int((await conn.execute(query)).scalar_one())


async def active_hosts(conn: AsyncConnection, fix_id: int) -> int:
    """Admitted hosts with work left in this task."""
    unfinished = select(fix_records.c.host_id).where(
        fix_records.c.fix_id == fix_id,
        any_of(fix_records.c.status, [int(s) for s in FIX_UNFINISHED]),
    )
    query = select(func.count()).where(
        and_(
            snapshot_records.c.fix_id == fix_id,
            snapshot_records.c.admitted.is_(True),
            snapshot_records.c.host_id.in_(unfinished),
        )
    )
    return int((await conn.execute(query)).scalar_one())


async def stop_untouched_hosts(
    conn: AsyncConnection, fix_id: int, host_ids: list[int], reason: str, now: datetime
) -> None:
    """Hosts never admitted: pending snapshots fail and waiting fixes fail with `reason`."""
    pending = await _record_ids(conn, snapshot_records, fix_id, host_ids, SnapshotStatus.PENDING)
    for record_id in pending:
        await set_snapshot_status(conn, record_id, SnapshotStatus.FAILED, reason, now)
    waiting = await _record_ids(conn, fix_records, fix_id, host_ids, FixStatus.WAITING)
    await set_fix_statuses(conn, waiting, FixStatus.FAILED, reason, now)
    await _admit(conn, fix_id, host_ids)


async def _record_ids(
    conn: AsyncConnection, table: Table, fix_id: int, host_ids: list[int], status: int
) -> list[int]:
    """The ids of the task's records (`table`: snapshot or fix records) of `host_ids` in
    `status`."""
    query = select(table.c.id).where(
        table.c.fix_id == fix_id, table.c.host_id.in_(host_ids), table.c.status == int(status)
    )
    return [int(record_id) for record_id in (await conn.execute(query)).scalars()]


async def _admit(conn: AsyncConnection, fix_id: int, host_ids: list[int]) -> None:
    await conn.execute(
        update(snapshot_records)
        .where(snapshot_records.c.fix_id == fix_id, snapshot_records.c.host_id.in_(host_ids))
        .values(admitted=True)
    )
