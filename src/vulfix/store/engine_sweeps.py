"""Work the engine does on its own: settle hosts after a change, expire leases, time out
jobs nobody picks up, and queue deletion of snapshots whose retention ran out.

Every transition is a guarded update, so several replicas may sweep at once safely.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.fixing import transitions
from vulfix.fixing.statuses import FixStatus
from vulfix.store.fixing_tables import jobs
from vulfix.store.inventory_tables import machine_snapshots
from vulfix.store.job_queue import schedule_hosts
from vulfix.store.job_reports import DELETE_RETRY
from vulfix.store.record_updates import (
    admit_hosts,
    fail_snapshot,
    set_fix_statuses,
    waiting_fix_records,
)
from vulfix.store.tables import to_stored

SWEEP_BATCH = 1000


async def settle(
    conn: AsyncConnection,
    account_id: int,
    fix_ids: Iterable[int],
    host_ids: Iterable[int],
    now: datetime,
) -> list[int]:
    """After records moved: let waiting hosts into their tasks' windows (or stop them when
    the error budget is spent) and queue the next job of every idle host involved."""
    hosts = set(host_ids)
    for fix_id in sorted(set(fix_ids)):
        hosts.update(await admit_hosts(conn, fix_id, now))
    return await schedule_hosts(conn, account_id, hosts, now)


async def expire_leases(
    conn: AsyncConnection, now: datetime, lease_seconds: float
) -> tuple[int, list[int]]:
    """Leased jobs whose lease ran out: the agent lost contact. Returns (expired, hosts to wake)."""
    rows = await _jobs_where(
        conn, jobs.c.state == "leased", jobs.c.lease_expires_at < to_stored(now)
    )
    reason = transitions.REASON_LEASE_EXPIRED.format(seconds=lease_seconds)
    expired, woken = 0, []
    for job in rows:
        if await _close(conn, job, "expired", "expired", now):
            expired += 1
            await _fail_job_record(conn, job, reason, now, whole_host=False)
            woken += await settle(conn, int(job.account_id), _fix_ids(job), [int(job.host_id)], now)
    return expired, woken


async def time_out_dispatch(
    conn: AsyncConnection, now: datetime, timeout_seconds: float
) -> tuple[int, list[int]]:
    """Queued jobs no agent picked up in time: the host is offline; its remaining work in that
    task fails at once rather than one timeout per record."""
    limit = to_stored(now - timedelta(seconds=timeout_seconds))
    rows = await _jobs_where(conn, jobs.c.state == "queued", jobs.c.created_at < limit)
    reason = transitions.REASON_DISPATCH_TIMEOUT.format(seconds=timeout_seconds)
    timed_out, woken = 0, []
    for job in rows:
        if await _close(conn, job, "cancelled", "timeout", now):
            timed_out += 1
            await _fail_job_record(conn, job, reason, now, whole_host=True)
            woken += await settle(conn, int(job.account_id), _fix_ids(job), [], now)
    return timed_out, woken


async def queue_snapshot_deletes(conn: AsyncConnection, now: datetime) -> list[int]:
    """Hosts holding snapshots past their retention get a delete job when they are idle."""
    query = (
        select(machine_snapshots.c.account_id, machine_snapshots.c.host_id)
        .where(
            machine_snapshots.c.deleted_at.is_(None),
            machine_snapshots.c.expires_at <= to_stored(now),
        )
        .distinct()
        .limit(SWEEP_BATCH)
    )
    by_account: dict[int, set[int]] = {}
    for row in await conn.execute(query):
        by_account.setdefault(int(row.account_id), set()).add(int(row.host_id))
    woken: list[int] = []
    for account_id, host_ids in by_account.items():
        woken += await schedule_hosts(conn, account_id, host_ids, now)
    return woken


async def _jobs_where(conn: AsyncConnection, *conditions: ColumnElement[bool]) -> list[Row[Any]]:
    query = select(jobs).where(*conditions).order_by(jobs.c.job_id).limit(SWEEP_BATCH)
    return list((await conn.execute(query)).all())


async def _close(
    conn: AsyncConnection, job: Row[Any], state: str, outcome: str, now: datetime
) -> bool:
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
    if job.kind == "snapshot":
        await fail_snapshot(conn, int(job.snapshot_record_id), reason, now)
    elif job.kind == "fix":
        records = [int(job.fix_record_id)]
        if whole_host:
            records += await waiting_fix_records(conn, int(job.fix_id), int(job.host_id))
        await set_fix_statuses(conn, records, FixStatus.FAILED, reason, now)
    else:
        await conn.execute(
            update(machine_snapshots)
            .where(machine_snapshots.c.id == job.machine_snapshot_id)
            .values(expires_at=to_stored(now + DELETE_RETRY))
        )


def _fix_ids(job: Row[Any]) -> list[int]:
    return [int(job.fix_id)] if job.fix_id is not None else []
