"""What an operator does to a running task: retry a snapshot or a fix, cancel, read a log.

Each check answers with the domain error the action layer maps to the documented code
(spec §3.5): unknown record -> RecordNotFound, still running -> RecordBusy, not failed ->
RecordNotRetryable, needs its snapshot or an online agent -> RecordBlocked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.fixing import errors, transitions
from vulfix.fixing.host_log import HostLog
from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.fixing.task_view import RETRY_WINDOW
from vulfix.store.fixing_tables import (
    JOB_ACTIVE,
    fix_items,
    fix_records,
    jobs,
    snapshot_records,
)
from vulfix.store.inventory_tables import hosts, machine_snapshots
from vulfix.store.record_updates import set_fix_statuses, set_snapshot_status
from vulfix.store.row_locks import lock_task
from vulfix.store.tables import as_utc, fix_tasks, to_stored


async def _task(conn: AsyncConnection, account_id: int, fix_id: int) -> object:
    """The caller's task, locked for the rest of the transaction (`row_locks`)."""
    await lock_task(conn, fix_id)
    task = (
        await conn.execute(
            select(fix_tasks.c.fix_id, fix_tasks.c.cancelled_at).where(
                fix_tasks.c.fix_id == fix_id, fix_tasks.c.account_id == account_id
            )
        )
    ).first()
    if task is None:
        raise errors.RecordNotFound(
            f"No fix task with FixId {fix_id}.", f"修复任务 {fix_id} 不存在。"
        )
    if task.cancelled_at is not None:
        raise errors.RecordNotRetryable(
            f"Fix task {fix_id} was cancelled; create a new task instead.",
            f"修复任务 {fix_id} 已取消，请新建任务。",
        )
    return task


async def _require_online(
    conn: AsyncConnection, host_id: int, now: datetime, offline_after: timedelta
) -> None:
    seen = (
        await conn.execute(select(hosts.c.last_seen_at, hosts.c.quuid).where(hosts.c.id == host_id))
    ).one()
    if seen.last_seen_at is None or as_utc(seen.last_seen_at) < now - offline_after:
        raise errors.RecordBlocked(
            f"The agent of host {seen.quuid} is offline; retry once it is back.",
            f"主机 {seen.quuid} 的客户端离线，请在其上线后重试。",
        )


def _check_window(modified_at: datetime, now: datetime) -> None:
    if as_utc(modified_at) < now - RETRY_WINDOW:
        raise errors.RecordNotRetryable(
            "The failure is older than the 7-day retry window.", "失败记录已超过 7 天的重试期限。"
        )


async def retry_snapshot(
    conn: AsyncConnection,
    account_id: int,
    fix_id: int,
    quuid: str,
    record_id: int,
    now: datetime,
    quota: int,
) -> int:
    """Snapshot record 2 -> 0 and its host's records 4 -> 0; returns the host id."""
    await _task(conn, account_id, fix_id)
    record = (
        await conn.execute(
            select(snapshot_records).where(
                snapshot_records.c.id == record_id,
                snapshot_records.c.fix_id == fix_id,
                snapshot_records.c.quuid == quuid,
            )
        )
    ).first()
    if record is None:
        raise errors.RecordNotFound(
            f"Fix task {fix_id} has no snapshot record {record_id} for host {quuid}.",
            f"修复任务 {fix_id} 中没有主机 {quuid} 的快照记录 {record_id}。",
        )
    if record.status == SnapshotStatus.PENDING:
        raise errors.RecordBusy("The snapshot is still being taken.", "快照仍在创建中。")
    if record.status != SnapshotStatus.FAILED:
        raise errors.RecordNotRetryable(
            "Only a failed snapshot can be retried.", "只有创建失败的快照可以重试。"
        )
    _check_window(record.modified_at, now)
    live = select(func.count()).where(
        machine_snapshots.c.host_id == record.host_id, machine_snapshots.c.deleted_at.is_(None)
    )
    if int((await conn.execute(live)).scalar_one()) >= quota:
        raise errors.SnapshotQuotaExhausted(
            f"Host {quuid} already keeps {quota} snapshots; let some expire first.",
            f"主机 {quuid} 的快照数量已达上限 {quota}。",
        )
    await set_snapshot_status(conn, record_id, SnapshotStatus.PENDING, "", now, retried=True)
    blocked = select(fix_records.c.id).where(
        fix_records.c.fix_id == fix_id,
        fix_records.c.host_id == record.host_id,
        fix_records.c.status == int(FixStatus.SNAPSHOT_FAILED),
    )
    await set_fix_statuses(
        conn, [int(i) for i in (await conn.execute(blocked)).scalars()], FixStatus.WAITING, "", now
    )
    await conn.execute(
        update(snapshot_records).where(snapshot_records.c.id == record_id).values(admitted=True)
    )
    return int(record.host_id)


async def retry_fix(
    conn: AsyncConnection,
    account_id: int,
    fix_id: int,
    quuid: str,
    vul_id: int | None,
    kb_id: int | None,
    now: datetime,
    offline_after: timedelta,
) -> int:
    """Failed fix records 3 -> 0; returns the host id."""
    await _task(conn, account_id, fix_id)
    query = (
        select(
            fix_records.c.id, fix_records.c.host_id, fix_records.c.status, fix_records.c.modified_at
        )
        .join(fix_items, fix_items.c.id == fix_records.c.item_id)
        .where(fix_records.c.fix_id == fix_id, fix_records.c.quuid == quuid)
    )
    if vul_id is not None:
        query = query.where(fix_items.c.vul_id == vul_id)
    if kb_id is not None:
        query = query.where(fix_items.c.kb_id == kb_id)
    records = (await conn.execute(query)).all()
    if not records:
        raise errors.RecordNotFound(
            f"Fix task {fix_id} has no matching fix record for host {quuid}.",
            f"修复任务 {fix_id} 中没有主机 {quuid} 的匹配修复记录。",
        )
    failed = [r for r in records if r.status == FixStatus.FAILED]
    if vul_id is not None or kb_id is not None:
        if any(r.status == FixStatus.SNAPSHOT_FAILED for r in records):
            raise errors.RecordBlocked(
                "This fix waits for its snapshot: retry the snapshot (RetryCreateSnapshot).",
                "该修复依赖的快照失败，请先重试快照（RetryCreateSnapshot）。",
            )
        if len(failed) != len(records):
            raise errors.RecordNotRetryable(
                "Only a failed fix can be retried.", "只有修复失败的记录可以重试。"
            )
    elif not failed:
        if any(r.status == FixStatus.SNAPSHOT_FAILED for r in records):
            raise errors.RecordBlocked(
                "These fixes wait for their snapshot: retry the snapshot first.",
                "这些修复依赖的快照失败，请先重试快照。",
            )
        raise errors.RecordNotRetryable(
            "The host has no failed fix in this task.", "该主机在此任务中没有修复失败的记录。"
        )
    for record in failed:
        _check_window(record.modified_at, now)
    host_id = int(records[0].host_id)
    await _require_online(conn, host_id, now, offline_after)
    await set_fix_statuses(conn, [int(r.id) for r in failed], FixStatus.WAITING, "", now)
    await conn.execute(
        update(snapshot_records)
        .where(snapshot_records.c.fix_id == fix_id, snapshot_records.c.host_id == host_id)
        .values(admitted=True)
    )
    return host_id


async def cancel(conn: AsyncConnection, account_id: int, fix_id: int, now: datetime) -> list[int]:
    """Stops what has not started: pending snapshots fail, waiting fixes fail, queued jobs are
    withdrawn. Jobs already running finish and report (a package upgrade is not interrupted).
    Returns the hosts whose queued job was withdrawn: they may have work in other tasks."""
    await _task(conn, account_id, fix_id)
    await conn.execute(
        update(fix_tasks).where(fix_tasks.c.fix_id == fix_id).values(cancelled_at=to_stored(now))
    )
    # The task's active jobs, found through its hosts' one active job each (the unique
    # partial index) rather than among every job ever run.
    task_hosts = select(snapshot_records.c.host_id).where(snapshot_records.c.fix_id == fix_id)
    active = (jobs.c.host_id.in_(task_hosts), JOB_ACTIVE, jobs.c.fix_id == fix_id)
    withdraw = (
        update(jobs)
        .where(*active, jobs.c.state == "queued")
        .values(state="cancelled", outcome="cancelled", finished_at=to_stored(now))
        .returning(jobs.c.host_id)
    )
    withdrawn = [int(h) for h in (await conn.execute(withdraw)).scalars()]
    running = select(jobs.c.snapshot_record_id).where(
        *active, jobs.c.state == "leased", jobs.c.snapshot_record_id.is_not(None)
    )
    pending = select(snapshot_records.c.id).where(
        snapshot_records.c.fix_id == fix_id,
        snapshot_records.c.status == int(SnapshotStatus.PENDING),
        snapshot_records.c.id.not_in(running),
    )
    for record_id in list((await conn.execute(pending)).scalars()):
        await set_snapshot_status(
            conn, int(record_id), SnapshotStatus.FAILED, transitions.REASON_CANCELLED, now
        )
    waiting = select(fix_records.c.id).where(
        fix_records.c.fix_id == fix_id, fix_records.c.status == int(FixStatus.WAITING)
    )
    await set_fix_statuses(
        conn,
        [int(i) for i in (await conn.execute(waiting)).scalars()],
        FixStatus.FAILED,
        transitions.REASON_CANCELLED,
        now,
    )
    return withdrawn


async def host_log(
    conn: AsyncConnection, account_id: int, fix_id: int, quuid: str, vul_id: int
) -> HostLog:
    query = (
        select(
            fix_records.c.status,
            fix_records.c.exit_code,
            fix_records.c.output_tail,
            fix_records.c.fail_reason,
            fix_records.c.modified_at,
        )
        .join(fix_items, fix_items.c.id == fix_records.c.item_id)
        .join(fix_tasks, fix_tasks.c.fix_id == fix_records.c.fix_id)
        .where(
            fix_tasks.c.account_id == account_id,
            fix_records.c.fix_id == fix_id,
            fix_records.c.quuid == quuid,
            fix_items.c.vul_id == vul_id,
        )
        .order_by(fix_records.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise errors.RecordNotFound(
            f"Fix task {fix_id} has no record of VulId {vul_id} on host {quuid}.",
            f"修复任务 {fix_id} 中没有主机 {quuid} 上漏洞 {vul_id} 的记录。",
        )
    return HostLog(
        int(row.status), row.exit_code, row.output_tail, row.fail_reason, as_utc(row.modified_at)
    )
