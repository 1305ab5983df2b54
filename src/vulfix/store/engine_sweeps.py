"""Work the engine does on its own: settle hosts after a change, expire leases, time out
jobs nobody picks up, and queue deletion of snapshots whose retention ran out.

Every replica's engine sweeps each second. A sweep transaction first takes the sweep turn
(`row_locks.take_sweep_turn`): while one replica sweeps the others skip, so N replicas do
the work once, never contend with one another, and only a sweep ever holds several task
locks. Each job is then closed by a guarded update under its task's lock, so a report or
claim racing the sweep wins or loses cleanly; hosts are scheduled once, at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.fixing import transitions
from vulfix.fixing.statuses import FIX_UNFINISHED, FixStatus, SnapshotStatus
from vulfix.store.fixing_tables import job_state_is, jobs, snapshot_records
from vulfix.store.inventory_tables import machine_snapshots
from vulfix.store.job_queue import schedule_hosts
from vulfix.store.job_reports import DELETE_RETRY
from vulfix.store.record_updates import (
    fail_snapshot,
    fix_status,
    set_fix_statuses,
    waiting_fix_records,
)
from vulfix.store.row_locks import lock_hosts, lock_task, take_sweep_turn
from vulfix.store.tables import to_stored
from vulfix.store.task_admission import admit_hosts

SWEEP_BATCH = 1000
HostsByAccount = dict[int, set[int]]


async def settle(
    conn: AsyncConnection,
    account_id: int,
    fix_ids: Iterable[int],
    host_ids: Iterable[int],
    now: datetime,
) -> list[int]:
    """After records moved (under their tasks' locks): let waiting hosts into their tasks'
    windows (or stop them when the error budget is spent) and queue the next job of every
    idle host involved."""
    hosts = set(host_ids) | await admit(conn, fix_ids, now)
    return await schedule_hosts(conn, account_id, hosts, now)


async def admit(conn: AsyncConnection, fix_ids: Iterable[int], now: datetime) -> set[int]:
    admitted: set[int] = set()
    for fix_id in sorted(set(fix_ids)):
        admitted.update(await admit_hosts(conn, fix_id, now))
    return admitted


async def expire_leases(
    conn: AsyncConnection, now: datetime, lease_seconds: float
) -> tuple[int, list[int]]:
    """Leased jobs whose lease ran out: the agent lost contact. Returns (expired, hosts to wake)."""
    if not await take_sweep_turn(conn):
        return 0, []
    rows = await _jobs_where(conn, "leased", jobs.c.lease_expires_at, to_stored(now))
    reason = transitions.REASON_LEASE_EXPIRED.format(seconds=lease_seconds)
    expired, to_wake = 0, HostsByAccount()
    for job in rows:
        if await _close(conn, job, "expired", "expired", now):
            expired += 1
            await _fail_job_record(conn, job, reason, now, whole_host=False)
            hosts = to_wake.setdefault(int(job.account_id), set())
            hosts.add(int(job.host_id))
            hosts.update(await admit(conn, _fix_ids(job), now))
    return expired, await _schedule(conn, to_wake, now)


async def time_out_dispatch(
    conn: AsyncConnection, now: datetime, timeout_seconds: float
) -> tuple[int, list[int]]:
    """Queued jobs no agent picked up in time: the host is offline; its remaining work in that
    task fails at once rather than one timeout per record."""
    if not await take_sweep_turn(conn):
        return 0, []
    limit = to_stored(now - timedelta(seconds=timeout_seconds))
    rows = await _jobs_where(conn, "queued", jobs.c.created_at, limit)
    reason = transitions.REASON_DISPATCH_TIMEOUT.format(seconds=timeout_seconds)
    timed_out, to_wake = 0, HostsByAccount()
    for job in rows:
        if await _close(conn, job, "cancelled", "timeout", now):
            timed_out += 1
            await _fail_job_record(conn, job, reason, now, whole_host=True)
            admitted = await admit(conn, _fix_ids(job), now)
            to_wake.setdefault(int(job.account_id), set()).update(admitted)
    return timed_out, await _schedule(conn, to_wake, now)


async def queue_snapshot_deletes(conn: AsyncConnection, now: datetime) -> list[int]:
    """Hosts holding snapshots past their retention get a delete job when they are idle."""
    if not await take_sweep_turn(conn):
        return []
    query = (
        select(machine_snapshots.c.account_id, machine_snapshots.c.host_id)
        .where(
            machine_snapshots.c.deleted_at.is_(None),
            machine_snapshots.c.expires_at <= to_stored(now),
        )
        .distinct()
        .limit(SWEEP_BATCH)
    )
    by_account = HostsByAccount()
    for row in await conn.execute(query):
        by_account.setdefault(int(row.account_id), set()).add(int(row.host_id))
    return await _schedule(conn, by_account, now)


async def _schedule(conn: AsyncConnection, by_account: HostsByAccount, now: datetime) -> list[int]:
    # Every host locked at once, in one order, before any account's are scheduled.
    await lock_hosts(conn, (h for hosts in by_account.values() for h in hosts))
    woken: list[int] = []
    for account_id, host_ids in sorted(by_account.items()):
        woken += await schedule_hosts(conn, account_id, host_ids, now)
    return woken


async def _jobs_where(
    conn: AsyncConnection, state: str, time: Column[datetime], before: datetime
) -> list[Row[Any]]:
    """The oldest jobs in `state` whose `time` is before `before`, in that order: the order
    of the state's partial index, which then serves both the condition and the order (by
    job id, SQLite would rather scan every job ever run)."""
    query = (
        select(jobs)
        .where(job_state_is(state), time < before)
        .order_by(time, jobs.c.job_id)
        .limit(SWEEP_BATCH)
    )
    return list((await conn.execute(query)).all())


async def _close(
    conn: AsyncConnection, job: Row[Any], state: str, outcome: str, now: datetime
) -> bool:
    """Closes the job unless a report, claim or cancel moved it first; the task's lock, taken
    first, makes whoever comes second see the first one's outcome."""
    if job.fix_id is not None:
        await lock_task(conn, int(job.fix_id))
    result = await conn.execute(
        update(jobs)
        .where(jobs.c.job_id == job.job_id, jobs.c.state == job.state)
        .values(state=state, outcome=outcome, finished_at=to_stored(now))
    )
    return result.rowcount == 1


async def _fail_job_record(
    conn: AsyncConnection,
    job: Row[Any],
    reason: str,
    now: datetime,
    *,
    whole_host: bool,
) -> None:
    """Fails what the job was for, if it still waits on the job: a queued job may have gone
    stale when a concurrent replica failed or cancelled its record."""
    if job.kind == "snapshot":
        status = await conn.scalar(
            select(snapshot_records.c.status).where(snapshot_records.c.id == job.snapshot_record_id)
        )
        if status == int(SnapshotStatus.PENDING):
            await fail_snapshot(conn, int(job.snapshot_record_id), reason, now)
    elif job.kind == "fix":
        status = await fix_status(conn, int(job.fix_record_id))
        records = [int(job.fix_record_id)] if status in FIX_UNFINISHED else []
        if whole_host:
            records += await waiting_fix_records(conn, int(job.fix_id), int(job.host_id))
        await set_fix_statuses(conn, sorted(set(records)), FixStatus.FAILED, reason, now)
    else:
        await conn.execute(
            update(machine_snapshots)
            .where(machine_snapshots.c.id == job.machine_snapshot_id)
            .values(expires_at=to_stored(now + DELETE_RETRY))
        )


def _fix_ids(job: Row[Any]) -> list[int]:
    return [int(job.fix_id)] if job.fix_id is not None else []
