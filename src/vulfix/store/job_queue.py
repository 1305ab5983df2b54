"""The job queue: at most one queued or leased job per host, leased to the host's agent.

A host's next job is its oldest pending snapshot in an admitted task, else its oldest
waiting fix whose snapshot cleared the way, else a snapshot whose retention ran out. Claims
are guarded updates (`... WHERE state = 'queued'`), so no job is ever leased twice. Hosts are
locked before they are scheduled and tasks before their jobs are leased (`row_locks`), so
replicas sharing PostgreSQL decide as SQLite's one writer at a time would.

The statements of this hot path are built once, with bound parameters: building a
statement per call cost SQLAlchemy 2.5 times what executing it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, insert, literal, null, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.fixing.statuses import SNAPSHOT_CLEARS_FIX, FixStatus, SnapshotStatus
from vulfix.store import hot_statements as hot
from vulfix.store.bounded_in import any_of, chunks
from vulfix.store.fixing_tables import (
    JOB_ACTIVE,
    JOB_WITH_RECORD,
    JOB_WORK,
    RECORD_STATUSES,
    fix_records,
    jobs,
    snapshot_records,
)
from vulfix.store.inventory_tables import machine_snapshots
from vulfix.store.record_updates import RECORD_AND_ITEM_COLUMNS, dispatch_fix, with_item
from vulfix.store.row_locks import is_serialised, lock_hosts, lock_task
from vulfix.store.tables import fix_tasks, to_stored

_HOST_ACTIVE_JOB = (
    select(jobs.c.job_id, jobs.c.account_id, *JOB_WORK)
    .where(jobs.c.host_id == bindparam("host_id"), JOB_ACTIVE)
    .limit(1)
)
# The same with what claiming the job decides by: whether its record still waits for it, and
# a snapshot's settings from its task, in one read instead of three.
_CLAIMABLE_JOB = (
    select(
        jobs.c.job_id,
        jobs.c.account_id,
        *JOB_WORK,
        *RECORD_STATUSES,
        machine_snapshots.c.id.label("snapshot_row"),
        machine_snapshots.c.deleted_at,
        fix_tasks.c.snapshot_name,
        fix_tasks.c.save_days,
    )
    .select_from(
        JOB_WITH_RECORD.outerjoin(
            machine_snapshots, machine_snapshots.c.id == jobs.c.machine_snapshot_id
        )
    )
    .where(jobs.c.host_id == bindparam("host_id"), JOB_ACTIVE)
    .limit(1)
)


# A host's next work, in order: its oldest pending snapshot in an admitted task, else its
# oldest waiting fix whose snapshot cleared the way, else a snapshot whose retention ran out.
# One statement asks all three (each arm its first row, ranked), where up to three statements
# asked in turn: an index lookup costs less than a statement's round through the driver.
# Each arm reads an index that holds its rows in the order taken (migration 0006), so nothing
# is sorted: a host whose report ends its work (every host, once a task) is answered in
# 5.0 us with the fix arm's item columns below (3.8 without), where three statements took
# 16.4 and the sorted union 8.2.
def _arm(rank: int, record_id: Any, fix_id: Any = None) -> list[Any]:
    """A non-fix arm's columns. Every arm gives the fix arm's, which reads its record with the
    item it fixes (`record_updates.RECORD_AND_ITEM_COLUMNS`): dispatching the fix needs them,
    and reading them here saves a statement. The others give their record's id (and fix_id,
    if they have one), and NULLs typed as the fix arm's columns for the rest (PostgreSQL
    types a bare NULL in a subquery as text)."""
    given = {"id": record_id} if fix_id is None else {"id": record_id, "fix_id": fix_id}
    return [literal(rank).label("rank")] + [
        given[c.name].label(c.name) if c.name in given else null().cast(c.type).label(c.name)
        for c in RECORD_AND_ITEM_COLUMNS
    ]


_PENDING_SNAPSHOT = (
    select(*_arm(0, snapshot_records.c.id, snapshot_records.c.fix_id))
    .where(
        snapshot_records.c.host_id == bindparam("host_id"),
        snapshot_records.c.status == int(SnapshotStatus.PENDING),
        snapshot_records.c.admitted.is_(True),
    )
    .order_by(snapshot_records.c.fix_id)
    .limit(1)
)
_cleared = snapshot_records.alias("cleared")
_WAITING_FIX = (
    with_item(
        select(literal(1).label("rank"), *RECORD_AND_ITEM_COLUMNS).join(
            _cleared,
            and_(
                _cleared.c.fix_id == fix_records.c.fix_id,
                _cleared.c.host_id == fix_records.c.host_id,
            ),
        )
    )
    .where(
        fix_records.c.host_id == bindparam("host_id"),
        fix_records.c.status == int(FixStatus.WAITING),
        any_of(_cleared.c.status, [int(s) for s in SNAPSHOT_CLEARS_FIX]),
        _cleared.c.admitted.is_(True),
    )
    .order_by(fix_records.c.fix_id, fix_records.c.id)
    .limit(1)
)
_EXPIRED_SNAPSHOT = (
    select(*_arm(2, machine_snapshots.c.id))
    .where(
        machine_snapshots.c.host_id == bindparam("host_id"),
        machine_snapshots.c.deleted_at.is_(None),
        machine_snapshots.c.expires_at <= bindparam("now"),
    )
    .order_by(machine_snapshots.c.expires_at)
    .limit(1)
)
_NEXT_WORK = union_all(
    *(select(arm.subquery()) for arm in (_PENDING_SNAPSHOT, _WAITING_FIX, _EXPIRED_SNAPSHOT))
)
_QUEUED_COLUMNS = (
    "account_id",
    "host_id",
    "fix_id",
    "kind",
    "snapshot_record_id",
    "fix_record_id",
    "machine_snapshot_id",
    "state",
    "created_at",
)
_QUEUE_JOB = hot.bound_insert(jobs, *_QUEUED_COLUMNS)
_QUEUE_LEASED_JOB = hot.bound_insert(jobs, *_QUEUED_COLUMNS, "leased_at", "lease_expires_at")
_RENEW_LEASE = (
    update(jobs)
    .where(jobs.c.job_id == bindparam("target_job"), jobs.c.state == "leased")
    .values(lease_expires_at=bindparam("expires"))
)
_LEASE = (
    update(jobs)
    .where(jobs.c.job_id == bindparam("target_job"), jobs.c.state == "queued")
    .values(state="leased", leased_at=bindparam("now"), lease_expires_at=bindparam("expires"))
)
_WITHDRAW = (
    update(jobs)
    .where(jobs.c.job_id == bindparam("target_job"), jobs.c.state == "queued")
    .values(state="cancelled", outcome="cancelled", finished_at=bindparam("now"))
)
_EXTEND_LEASE = (
    update(jobs)
    .where(
        jobs.c.job_id == bindparam("target_job"),
        jobs.c.host_id == bindparam("target_host"),
        jobs.c.state == "leased",
    )
    .values(lease_expires_at=bindparam("expires"))
)


async def has_active_job(engine: AsyncEngine, host_id: int) -> bool:
    """Whether the host has a queued or leased job, read without taking the write lock; a
    job queued right after this read wakes the host's poll through the notifier."""
    return await hot.read_first(engine, _HOST_ACTIVE_JOB, {"host_id": host_id}) is not None


async def busy_hosts(conn: AsyncConnection, host_ids: Iterable[int]) -> set[int]:
    ids = list(host_ids)
    if len(ids) == 1:
        return (
            {ids[0]}
            if (await hot.run(conn, _HOST_ACTIVE_JOB, {"host_id": ids[0]})).first()
            else set()
        )
    busy: set[int] = set()
    for chunk in chunks(ids):
        query = select(jobs.c.host_id).where(jobs.c.host_id.in_(chunk), JOB_ACTIVE)
        busy.update(int(h) for h in (await conn.execute(query)).scalars())
    return busy


async def schedule_hosts(
    conn: AsyncConnection, account_id: int, host_ids: Iterable[int], now: datetime
) -> list[int]:
    """Queues the next job of every idle host given; returns the hosts that got one."""
    ids = sorted(set(host_ids))
    if not ids:
        return []
    await lock_hosts(conn, ids)
    busy = await busy_hosts(conn, ids)
    rows: list[dict[str, object]] = []
    for host_id in ids:
        if host_id not in busy:
            job, _read = await _next_job(conn, host_id, now)
            if job is not None:
                rows.append(_job_row(job, account_id, host_id, "queued", now))
    if len(rows) == 1:  # a host settling after its report: the common case
        await hot.run(conn, _QUEUE_JOB, rows[0])
    elif rows:
        await conn.execute(insert(jobs), rows)
    return [int(str(row["host_id"])) for row in rows]


class Leased(NamedTuple):
    """A job just leased to its host: its id, the job (a jobs row or a `NextJob`), and what
    was read for its work: for a fix just dispatched, its record and item as
    `record_updates.dispatch_fix` read them; for a snapshot, maybe its task's settings."""

    job_id: int
    job: Any
    record: Any = None


class NextJob(NamedTuple):
    """What a host should run next, and the record it is for."""

    kind: str
    fix_id: int | None = None
    snapshot_record_id: int | None = None
    fix_record_id: int | None = None
    machine_snapshot_id: int | None = None


async def _next_job(
    conn: AsyncConnection, host_id: int, now: datetime
) -> tuple[NextJob | None, Any]:
    """The host's next job, and for a fix its record and item as `_NEXT_WORK` read them."""
    arms = (await hot.run(conn, _NEXT_WORK, {"host_id": host_id, "now": to_stored(now)})).all()
    if not arms:
        return None, None
    first = min(arms, key=_rank)
    if first.rank == 0:
        return NextJob("snapshot", fix_id=first.fix_id, snapshot_record_id=first.id), None
    if first.rank == 1:
        return NextJob("fix", fix_id=first.fix_id, fix_record_id=first.id), first
    return NextJob("snapshot_delete", machine_snapshot_id=first.id), None


def _rank(arm: Any) -> int:
    return int(arm.rank)


def _job_row(
    job: NextJob, account_id: int, host_id: int, state: str, now: datetime
) -> dict[str, object]:
    return {
        **job._asdict(),
        "account_id": account_id,
        "host_id": host_id,
        "state": state,
        "created_at": to_stored(now),
    }


async def lease_next_job(
    conn: AsyncConnection, account_id: int, host_id: int, lease: timedelta, now: datetime
) -> Leased | None:
    """The next job of a host whose job has just ended, queued already leased: its agent
    asked for it with its report. Where writers take turns (SQLite) nothing can change
    between deciding the job and leasing it, so the claim's checks have nothing to catch;
    replicas on PostgreSQL queue and claim in two steps (`schedule_hosts`, `claim`)."""
    assert is_serialised(conn), "only where one writer runs at a time"
    job, read = await _next_job(conn, host_id, now)
    if job is None:
        return None
    row = _job_row(job, account_id, host_id, "leased", now)
    row |= {"leased_at": row["created_at"], "lease_expires_at": to_stored(now + lease)}
    queued = await hot.run(conn, _QUEUE_LEASED_JOB, row)
    assert queued.lastrowid is not None, "SQLite's driver gives the new row's id"
    job_id = queued.lastrowid
    record = None
    if job.fix_record_id is not None:
        record = await dispatch_fix(conn, job.fix_record_id, now, current=read)
    return Leased(job_id, job, record)


async def claim(
    conn: AsyncConnection, host_id: int, lease: timedelta, now: datetime
) -> tuple[Leased | None, list[int]]:
    """(the host's leased job (lease renewed), or its queued job now leased, or None if idle;
    hosts given a new job because the queued one was stale)."""
    parameters = {"host_id": host_id}
    row = (await hot.run(conn, _CLAIMABLE_JOB, parameters)).first()
    if row is not None and row.state == "queued" and not is_serialised(conn):
        # Replicas (PostgreSQL): read again under the task's lock, for another replica may
        # have failed or cancelled the record meanwhile. SQLite's one writer needs no second
        # look.
        if row.fix_id is not None:
            await lock_task(conn, int(row.fix_id))
        row = (await hot.run(conn, _CLAIMABLE_JOB, parameters)).first()
    if row is None:
        return None, []
    # A snapshot's settings, read with the job, for the work it asks (`job_reports.work_of`).
    settings = row if row.kind == "snapshot" else None
    expires = to_stored(now + lease)
    if row.state == "leased":
        renewed = await hot.run(conn, _RENEW_LEASE, {"target_job": row.job_id, "expires": expires})
        # Zero rows: a sweep on another replica expired it a moment ago.
        return (Leased(int(row.job_id), row, settings) if renewed.rowcount == 1 else None), []
    if not _still_runnable(row):
        # Queued by one replica while another failed or cancelled its record (PostgreSQL):
        # withdraw it and queue what the host should run instead.
        withdrawn = await hot.run(
            conn, _WITHDRAW, {"target_job": row.job_id, "now": to_stored(now)}
        )
        if withdrawn.rowcount != 1:
            return None, []
        return None, await schedule_hosts(conn, int(row.account_id), [host_id], now)
    result = await hot.run(
        conn, _LEASE, {"target_job": row.job_id, "now": to_stored(now), "expires": expires}
    )
    if result.rowcount != 1:
        return None, []  # another poll of this host, or a cancel, took it first
    record = settings
    if row.fix_record_id is not None:
        record = await dispatch_fix(conn, int(row.fix_record_id), now)
    return Leased(int(row.job_id), row, record), []


def _still_runnable(job: Any) -> bool:
    """The queued job's record still waits for it, as `_CLAIMABLE_JOB` read it."""
    if job.kind == "fix":
        return bool(job.fix_status == FixStatus.WAITING)
    if job.kind == "snapshot":
        return bool(job.snapshot_status == SnapshotStatus.PENDING)
    return job.snapshot_row is not None and job.deleted_at is None


async def extend_lease(
    conn: AsyncConnection, host_id: int, job_id: int, lease: timedelta, now: datetime
) -> bool:
    parameters = {"target_job": job_id, "target_host": host_id, "expires": to_stored(now + lease)}
    return (await hot.run(conn, _EXTEND_LEASE, parameters)).rowcount == 1
