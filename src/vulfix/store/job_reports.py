"""What a leased job asks of the agent, and what its report changes (applied exactly once)."""

from __future__ import annotations

import logging
import os
import random
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.fixing import transitions
from vulfix.fixing.agent_port import (
    FixWork,
    HostIdentity,
    JobResult,
    PackageTarget,
    ReportOutcome,
    SnapshotDeleteWork,
    SnapshotWork,
    UnknownJob,
)
from vulfix.fixing.budgets import has_budgets
from vulfix.fixing.statuses import FIX_UNFINISHED, FixStatus, SnapshotStatus
from vulfix.store import hot_statements as hot
from vulfix.store.bounded_in import any_of
from vulfix.store.fixing_tables import (
    JOB_WITH_RECORD,
    JOB_WORK,
    RECORD_STATUSES,
    fix_items,
    fix_records,
    jobs,
    snapshot_records,
)
from vulfix.store.inventory_tables import hosts, machine_snapshots
from vulfix.store.record_updates import (
    FixRecord,
    SnapshotRecord,
    fail_snapshot,
    record_and_item,
    set_fix_statuses,
    set_snapshot_status,
)
from vulfix.store.row_locks import is_serialised, lock_task
from vulfix.store.tables import fix_tasks, to_stored

log = logging.getLogger("vulfix.engine")

_ALNUM = string.ascii_lowercase + string.digits
JobRow = Row[Any]
DELETE_RETRY = timedelta(hours=1)


# A reported job with what applying its report reads besides: its task's budgets and
# snapshot settings, its host's disk, and its record's status, in one read (outer joins on
# primary keys) instead of four statements.
_REPORTED_JOB = (
    select(
        *JOB_WORK,
        fix_tasks.c.max_concurrency,
        fix_tasks.c.max_errors,
        fix_tasks.c.snapshot_name,
        fix_tasks.c.save_days,
        hosts.c.disk_id,
        *RECORD_STATUSES,
        fix_items.c.vul_id,
    )
    .select_from(
        JOB_WITH_RECORD.join(hosts, hosts.c.id == jobs.c.host_id).outerjoin(
            fix_items, fix_items.c.id == fix_records.c.item_id
        )
    )
    .where(jobs.c.job_id == bindparam("job_id"), jobs.c.host_id == bindparam("host_id"))
)
_TASK_SNAPSHOT = select(fix_tasks.c.snapshot_name, fix_tasks.c.save_days).where(
    fix_tasks.c.fix_id == bindparam("fix_id")
)
_FINISH_JOB = (
    update(jobs)
    .where(jobs.c.job_id == bindparam("target_job"), jobs.c.state == "leased")
    .values(
        state="done",
        outcome=bindparam("new_outcome"),
        finished_at=bindparam("stamp"),
        duration_seconds=bindparam("seconds"),
    )
)
_ADD_MACHINE_SNAPSHOT = hot.bound_insert(
    machine_snapshots,
    "account_id",
    "host_id",
    "snapshot_id",
    "snapshot_name",
    "disk_id",
    "provider_ref",
    "fix_id",
    "created_at",
    "expires_at",
)
_SNAPSHOT_TO_DELETE = select(
    machine_snapshots.c.snapshot_id, machine_snapshots.c.provider_ref
).where(machine_snapshots.c.id == bindparam("row_id"))
_SNAPSHOT_DELETED = (
    update(machine_snapshots)
    .where(machine_snapshots.c.id == bindparam("row_id"))
    .values(deleted_at=bindparam("stamp"))
)
_SNAPSHOT_DELETE_LATER = (
    update(machine_snapshots)
    .where(machine_snapshots.c.id == bindparam("row_id"))
    .values(expires_at=bindparam("stamp"))
)
# Whether the host has anything left in the task: a fix not yet finished, or its snapshot.
_WORK_LEFT = union_all(
    select(literal(1)).where(
        fix_records.c.fix_id == bindparam("fix_id"),
        fix_records.c.host_id == bindparam("host_id"),
        any_of(fix_records.c.status, [int(s) for s in FIX_UNFINISHED]),
    ),
    select(literal(1)).where(
        snapshot_records.c.fix_id == bindparam("fix_id"),
        snapshot_records.c.host_id == bindparam("host_id"),
        snapshot_records.c.status == int(SnapshotStatus.PENDING),
    ),
).limit(1)


# Snapshot ids name snapshots, they guard nothing: a generator seeded once from the system's
# source draws them without a system call each (those were 1 to 2 % of a busy server's CPU).
# A forked child draws its own sequence, not its parent's.
_snapshot_ids = random.Random()
os.register_at_fork(after_in_child=_snapshot_ids.seed)


def new_snapshot_id() -> str:
    """`snap-` and 8 random characters of [a-z0-9], from one draw."""
    number = _snapshot_ids.randrange(len(_ALNUM) ** 8)
    characters = []
    for _ in range(8):
        number, digit = divmod(number, len(_ALNUM))
        characters.append(_ALNUM[digit])
    return "snap-" + "".join(characters)


Work = SnapshotWork | FixWork | SnapshotDeleteWork


async def work_of(conn: AsyncConnection, job: Any, record: Any = None) -> Work:
    """What the agent is asked to do for `job` (a jobs row, or `job_queue.NextJob`). `record`
    may bring what was read already: for a fix, its record and item as
    `record_updates.dispatch_fix` read them; for a snapshot, its task's snapshot_name and
    save_days."""
    if job.kind == "snapshot":
        task = record
        if task is None:
            task = (await hot.run(conn, _TASK_SNAPSHOT, {"fix_id": job.fix_id})).one()
        return SnapshotWork(task.snapshot_name, task.save_days)
    if job.kind == "fix":
        return await _fix_work(conn, job.fix_record_id, record)
    snap = (await hot.run(conn, _SNAPSHOT_TO_DELETE, {"row_id": job.machine_snapshot_id})).one()
    return SnapshotDeleteWork(snap.snapshot_id, snap.provider_ref)


async def _fix_work(conn: AsyncConnection, record_id: int, item: Any = None) -> FixWork:
    if item is None:
        item = await record_and_item(conn, record_id)
    packages = tuple(PackageTarget(p["Name"], p["FixedVersion"]) for p in item.packages or ())
    return FixWork(
        vul_id=item.vul_id,
        vul_name=item.vul_name,
        fix_method=item.fix_method,
        packages=packages,
        service=item.service or "",
        kb_id=item.kb_id,
        kb_number=item.kb_number,
        kb_name=item.kb_name,
        pre_kb_list=tuple(item.pre_kb_list),
    )


@dataclass
class AppliedReport:
    outcome: ReportOutcome
    fix_id: int | None = None
    host_finished_task: bool = False

    @property
    def finished_tasks(self) -> list[int]:
        """The task the host has no work left in, if any: it may admit waiting hosts."""
        return [self.fix_id] if self.fix_id is not None and self.host_finished_task else []


async def apply_report(
    conn: AsyncConnection, host: HostIdentity, job_id: int, result: JobResult, now: datetime
) -> AppliedReport:
    parameters = {"job_id": job_id, "host_id": host.host_id}
    job = (await hot.run(conn, _REPORTED_JOB, parameters)).first()
    if job is None:
        raise UnknownJob(f"no job {job_id} for this host")
    if job.fix_id is not None and not is_serialised(conn):
        # Read again under the task's lock: a resend, a sweep or a cancel may have gone first.
        await lock_task(conn, int(job.fix_id))
        job = (await hot.run(conn, _REPORTED_JOB, parameters)).one()
    if job.state != "leased":
        detail = {
            "done": "already applied",
            "expired": "not applied: the lease had expired and the record was failed",
            "cancelled": "not applied: the job was cancelled",
        }.get(job.state, "not applied: the job was never handed out")
        return AppliedReport(ReportOutcome(False, detail))
    finish = {
        "target_job": job_id,
        "new_outcome": result.outcome,
        "stamp": to_stored(now),
        "seconds": result.duration_seconds,
    }
    claimed = await hot.run(conn, _FINISH_JOB, finish)
    if claimed.rowcount != 1:
        return AppliedReport(ReportOutcome(False, "already applied"))
    moved_on, record = _record_moved_on(job, host)
    if moved_on:
        # Never a 500 that the agent would resend forever: the job is done, the record keeps
        # what it has. A snapshot the host did take is still recorded, so retention deletes it.
        log.warning("job %s reported after its record moved on (%s)", job_id, moved_on)
        if job.kind == "snapshot" and result.outcome == "success":
            await _record_machine_snapshot(conn, job, host, result, now)
        return AppliedReport(ReportOutcome(False, f"not applied: the {moved_on}"))
    if job.kind == "snapshot":
        await _apply_snapshot(conn, job, record, host, result, now)
    elif job.kind == "fix":
        status, reason = transitions.fix_outcome(result.outcome, result.reason)
        await set_fix_statuses(
            conn,
            [int(job.fix_record_id)],
            status,
            reason,
            now,
            exit_code=result.exit_code,
            output_tail=result.output_tail,
            current=record,
        )
    else:
        await _apply_snapshot_delete(conn, job.machine_snapshot_id, result, now)
    # Only a task with budgets admits hosts as others finish (`task_admission.admit_hosts`):
    # in any other, whether the host has work left there changes nothing.
    finished = has_budgets(job.max_concurrency, job.max_errors) and not await _host_has_work(
        conn, int(job.fix_id), host.host_id
    )
    return AppliedReport(ReportOutcome(True), job.fix_id, finished)


def _record_moved_on(job: JobRow, host: HostIdentity) -> tuple[str, Any]:
    """(What became of the job's record if it no longer waits for this report, else "";
    the record as read with the job, for the change that follows)."""
    if job.kind == "snapshot":
        assert job.snapshot_status is not None, "a job's record outlives it"
        snapshot = SnapshotStatus(job.snapshot_status)
        waiting = snapshot == SnapshotStatus.PENDING
        moved_on = "" if waiting else f"snapshot record is already {snapshot.name.lower()}"
        return moved_on, SnapshotRecord(int(snapshot), int(job.fix_id), host.host_id)
    if job.kind == "fix":
        assert job.fix_status is not None, "a job's record outlives it"
        fix = FixStatus(job.fix_status)
        waiting = fix == FixStatus.DISPATCHED
        moved_on = "" if waiting else f"fix record is already {fix.name.lower()}"
        record_id = int(job.fix_record_id)
        return moved_on, FixRecord(record_id, int(fix), int(job.fix_id), host.host_id, job.vul_id)
    return "", None


async def _apply_snapshot(
    conn: AsyncConnection,
    job: JobRow,
    record: Any,
    host: HostIdentity,
    result: JobResult,
    now: datetime,
) -> None:
    record_id = int(job.snapshot_record_id)
    status, reason = transitions.snapshot_outcome(result.outcome, result.reason)
    if status == SnapshotStatus.FAILED:
        await fail_snapshot(conn, record_id, reason, now, current=record)
        return
    snapshot_id = ""
    if status == SnapshotStatus.CREATED:
        snapshot_id = await _record_machine_snapshot(conn, job, host, result, now)
    await set_snapshot_status(
        conn, record_id, status, reason, now, snapshot_id=snapshot_id, current=record
    )


async def _record_machine_snapshot(
    conn: AsyncConnection, job: JobRow, host: HostIdentity, result: JobResult, now: datetime
) -> str:
    fix_id = int(job.fix_id)
    snapshot_id = new_snapshot_id()
    await hot.run(
        conn,
        _ADD_MACHINE_SNAPSHOT,
        {
            "account_id": host.account_id,
            "host_id": host.host_id,
            "snapshot_id": snapshot_id,
            "snapshot_name": job.snapshot_name,
            "disk_id": job.disk_id,
            "provider_ref": result.provider_ref,
            "fix_id": fix_id,
            "created_at": to_stored(now),
            "expires_at": (
                to_stored(now + timedelta(days=job.save_days)) if job.save_days else None
            ),
        },
    )
    return snapshot_id


async def _apply_snapshot_delete(
    conn: AsyncConnection, snapshot_row: int, result: JobResult, now: datetime
) -> None:
    if result.outcome == "success":
        await hot.run(conn, _SNAPSHOT_DELETED, {"row_id": snapshot_row, "stamp": to_stored(now)})
    else:
        later = to_stored(now + DELETE_RETRY)
        await hot.run(conn, _SNAPSHOT_DELETE_LATER, {"row_id": snapshot_row, "stamp": later})


async def _host_has_work(conn: AsyncConnection, fix_id: int, host_id: int) -> bool:
    parameters = {"fix_id": fix_id, "host_id": host_id}
    return (await hot.run(conn, _WORK_LEFT, parameters)).first() is not None
