"""Reads fix tasks for their status: the lookup rules of DESIGN §2, the whole task as a
`TaskView`, its version (the key of cached answers), and observed job durations."""

from __future__ import annotations

from sqlalchemy import bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.fixing.task_status import TaskLookup
from vulfix.fixing.task_view import (
    DurationEstimates,
    FixItemView,
    FixRecordView,
    HostRef,
    SnapshotRecordView,
    TaskView,
)
from vulfix.store.database import read_row, read_transaction
from vulfix.store.fixing_tables import fix_items, fix_records, jobs, snapshot_records
from vulfix.store.tables import as_utc, fix_tasks

PRIORS = DurationEstimates()
OBSERVED_JOBS = 50
_FIX_STATUSES = {int(status): status for status in FixStatus}
_SNAPSHOT_STATUSES = {int(status): status for status in SnapshotStatus}
# The read behind every DescribeVulFixStatus by FixId, built once.
_TASK_VERSION = select(fix_tasks.c.fix_id, fix_tasks.c.version).where(
    fix_tasks.c.fix_id == bindparam("fix_id"), fix_tasks.c.account_id == bindparam("account_id")
)


class SqlTaskReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def find_task(self, account_id: int, lookup: TaskLookup) -> TaskView | None:
        async with read_transaction(self.engine) as conn:
            fix_id = await find_fix_id(conn, account_id, lookup)
            return None if fix_id is None else await load_view(conn, fix_id)

    async def version(self, account_id: int, lookup: TaskLookup) -> tuple[int, int] | None:
        """(FixId, version) of the task the lookup selects, or None."""
        if lookup.fix_id is not None:
            parameters = {"fix_id": lookup.fix_id, "account_id": account_id}
            row = await read_row(self.engine, _TASK_VERSION, parameters)
            return None if row is None else (int(row.fix_id), int(row.version))
        async with read_transaction(self.engine) as conn:
            fix_id = await find_fix_id(conn, account_id, lookup)
            if fix_id is None:
                return None
            query = select(fix_tasks.c.version).where(fix_tasks.c.fix_id == fix_id)
            return fix_id, int((await conn.execute(query)).scalar_one())

    async def duration_estimates(self, account_id: int) -> DurationEstimates:
        async with read_transaction(self.engine) as conn:
            snapshot = await _mean_duration(conn, account_id, "snapshot")
            fix = await _mean_duration(conn, account_id, "fix")
        return DurationEstimates(snapshot or PRIORS.snapshot_seconds, fix or PRIORS.fix_seconds)


# The partial index's own condition (`fixing_tables.job_state_is` says why a literal).
_SUCCEEDED = jobs.c.outcome == literal_column("'success'")


async def _mean_duration(conn: AsyncConnection, account_id: int, kind: str) -> float | None:
    recent = (
        select(jobs.c.duration_seconds)
        .where(jobs.c.account_id == account_id, jobs.c.kind == kind, _SUCCEEDED)
        .order_by(jobs.c.job_id.desc())
        .limit(OBSERVED_JOBS)
        .subquery()
    )
    value = (await conn.execute(select(func.avg(recent.c.duration_seconds)))).scalar_one()
    return float(value) if value else None


async def find_fix_id(conn: AsyncConnection, account_id: int, lookup: TaskLookup) -> int | None:
    if lookup.fix_id is not None:
        query = select(fix_tasks.c.fix_id).where(
            fix_tasks.c.fix_id == lookup.fix_id, fix_tasks.c.account_id == account_id
        )
        found = (await conn.execute(query)).scalar_one_or_none()
        return int(found) if found is not None else None
    if lookup.vul_id is None:
        return None
    query = (
        select(func.max(fix_items.c.fix_id))
        .join(fix_tasks, fix_tasks.c.fix_id == fix_items.c.fix_id)
        .where(fix_tasks.c.account_id == account_id, fix_items.c.vul_id == lookup.vul_id)
    )
    if lookup.kb_id is not None:
        query = query.where(fix_items.c.kb_id == lookup.kb_id)
    if lookup.quuid is not None:
        query = query.join(fix_records, fix_records.c.item_id == fix_items.c.id).where(
            fix_records.c.quuid == lookup.quuid
        )
    found = (await conn.execute(query)).scalar_one_or_none()
    return int(found) if found is not None else None


async def load_view(conn: AsyncConnection, fix_id: int) -> TaskView:
    task = (
        await conn.execute(select(fix_tasks.c.created_at).where(fix_tasks.c.fix_id == fix_id))
    ).one()
    items = tuple(
        FixItemView(
            id=int(i.id),
            vul_id=int(i.vul_id),
            vul_name=i.vul_name,
            fix_method=int(i.fix_method),
            kb_id=int(i.kb_id),
            kb_number=i.kb_number,
            kb_name=i.kb_name,
            pre_kb_list=tuple(i.pre_kb_list),
        )
        for i in await conn.execute(
            select(fix_items).where(fix_items.c.fix_id == fix_id).order_by(fix_items.c.id)
        )
    )
    hosts: dict[str, HostRef] = {}
    snapshots = []
    snapshot_query = (
        select(snapshot_records)
        .where(snapshot_records.c.fix_id == fix_id)
        .order_by(snapshot_records.c.id)
    )
    for s in await conn.execute(snapshot_query):
        host = hosts[s.quuid] = HostRef(s.quuid, s.host_name, s.host_ip, s.machine_type)
        snapshots.append(
            SnapshotRecordView(
                id=int(s.id),
                host=host,
                snapshot_name=s.snapshot_name,
                snapshot_id=s.snapshot_id,
                status=_SNAPSHOT_STATUSES[s.status],
                fail_reason=s.fail_reason,
                modified_at=as_utc(s.modified_at),
                retried=bool(s.retried),
            )
        )
    fix_query = (
        select(
            fix_records.c.id,
            fix_records.c.item_id,
            fix_records.c.quuid,
            fix_records.c.status,
            fix_records.c.fail_reason,
            fix_records.c.modified_at,
            fix_records.c.dispatched_at,
        )
        .where(fix_records.c.fix_id == fix_id)
        .order_by(fix_records.c.id)
    )
    # A big task has tens of thousands of these: rows unpacked as tuples and statuses looked
    # up, rather than attribute access and an Enum call per field.
    records = tuple(
        FixRecordView(
            record_id,
            item_id,
            hosts[quuid],
            _FIX_STATUSES[status],
            fail_reason,
            as_utc(modified_at),
            as_utc(dispatched_at) if dispatched_at else None,
        )
        for record_id, item_id, quuid, status, fail_reason, modified_at, dispatched_at in (
            await conn.execute(fix_query)
        )
    )
    return TaskView(fix_id, as_utc(task.created_at), items, tuple(snapshots), records)
