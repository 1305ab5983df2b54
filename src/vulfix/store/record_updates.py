"""Changes to fix records inside one transaction, checked against the transition tables.

Every change bumps the task's version (the key of cached status answers) and keeps the
findings' IsSupportAutoFix in step with the records (spec §3.3). Within
`versions_bumped_once`, a task changed many times in a transaction is bumped once, as the
transaction ends: readers see a transaction whole, so one bump marks all its changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, Table, Update, and_, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.fixing import transitions
from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.store import hot_statements as hot
from vulfix.store.fixing_tables import fix_items, fix_records, snapshot_records
from vulfix.store.inventory_tables import findings, vulnerabilities
from vulfix.store.tables import fix_tasks, to_stored

_BUMP_VERSION = (
    update(fix_tasks)
    .where(fix_tasks.c.fix_id == bindparam("target_fix"))
    .values(version=fix_tasks.c.version + 1)
)
_SNAPSHOT_RECORD = select(
    snapshot_records.c.status, snapshot_records.c.fix_id, snapshot_records.c.host_id
).where(snapshot_records.c.id == bindparam("record_id"))
_FIX_RECORD_COLUMNS = (
    fix_records.c.id,
    fix_records.c.status,
    fix_records.c.fix_id,
    fix_records.c.host_id,
    fix_items.c.vul_id,
)
_FIX_RECORD = (
    select(*_FIX_RECORD_COLUMNS)
    .join(fix_items, fix_items.c.id == fix_records.c.item_id)
    .where(fix_records.c.id == bindparam("record_id"))
)
# A fix record with the item it fixes and the vulnerability's packages and service (none if
# the vulnerability left the inventory): what dispatching it changes, and what its job asks.
RECORD_AND_ITEM_COLUMNS = (
    *_FIX_RECORD_COLUMNS,
    fix_items.c.kb_id,
    fix_items.c.fix_method,
    fix_items.c.vul_name,
    fix_items.c.kb_number,
    fix_items.c.kb_name,
    fix_items.c.pre_kb_list,
    vulnerabilities.c.packages,
    vulnerabilities.c.service,
)


def with_item(query: Select[Any]) -> Select[Any]:
    """`query` over fix_records, joined to what `RECORD_AND_ITEM_COLUMNS` reads."""
    return (
        query.join(fix_items, fix_items.c.id == fix_records.c.item_id)
        .join(fix_tasks, fix_tasks.c.fix_id == fix_records.c.fix_id)
        .outerjoin(
            vulnerabilities,
            and_(
                vulnerabilities.c.account_id == fix_tasks.c.account_id,
                vulnerabilities.c.vul_id == fix_items.c.vul_id,
            ),
        )
    )


_RECORD_AND_ITEM = with_item(select(*RECORD_AND_ITEM_COLUMNS)).where(
    fix_records.c.id == bindparam("record_id")
)
_FINDING_RECORDS = (
    select(fix_records.c.status)
    .join(fix_items, fix_items.c.id == fix_records.c.item_id)
    .where(
        fix_records.c.fix_id == bindparam("fix_id"),
        fix_records.c.host_id == bindparam("host_id"),
        fix_items.c.vul_id == bindparam("vul_id"),
    )
)
_SET_FINDING = (
    update(findings)
    .where(
        findings.c.host_id == bindparam("target_host"), findings.c.vul_id == bindparam("target_vul")
    )
    .values(state=bindparam("state"), updated_at=bindparam("stamp"))
)
_FIX_STATUS = select(fix_records.c.status).where(fix_records.c.id == bindparam("record_id"))
_record_updates: dict[tuple[Table, tuple[str, ...]], Update] = {}


class SnapshotRecord(NamedTuple):
    """A snapshot record as a change reads it (`snapshot_record`'s columns), to hand to
    `set_snapshot_status` as `current`."""

    status: int
    fix_id: int
    host_id: int


class FixRecord(NamedTuple):
    """A fix record as a change reads it (`_FIX_RECORD`'s columns), to hand to
    `set_fix_statuses` as `current`."""

    id: int
    status: int
    fix_id: int
    host_id: int
    vul_id: int


def _guarded_update(table: Table, columns: tuple[str, ...]) -> Update:
    """`UPDATE table SET columns WHERE id = :target_id AND status = :old_status`, built once
    per column set (building statements per call cost more than running them)."""
    statement = _record_updates.get((table, columns))
    if statement is None:
        statement = (
            update(table)
            .where(table.c.id == bindparam("target_id"), table.c.status == bindparam("old_status"))
            .values({column: bindparam(f"new_{column}") for column in columns})
        )
        _record_updates[(table, columns)] = statement
    return statement


async def snapshot_record(conn: AsyncConnection, record_id: int) -> Any:
    """The snapshot record's status, fix_id and host_id (None if there is no such record),
    to hand to `set_snapshot_status` as `current` instead of reading it twice."""
    return (await hot.run(conn, _SNAPSHOT_RECORD, {"record_id": record_id})).first()


async def record_and_item(conn: AsyncConnection, record_id: int) -> Any:
    """A fix record's id, status, fix_id and host_id with its item's vul_id, vul_name,
    fix_method, kb_id, kb_number, kb_name and pre_kb_list, and its vulnerability's packages
    and service (None if it left the inventory)."""
    return (await hot.run(conn, _RECORD_AND_ITEM, {"record_id": record_id})).one()


async def dispatch_fix(
    conn: AsyncConnection, record_id: int, now: datetime, *, current: Any = None
) -> Any:
    """Moves the record of a fix job just leased to dispatched; returns the record with its
    item's fields (vul_id, vul_name, fix_method, kb_id, kb_number, kb_name, pre_kb_list),
    read once for both the change and the work the job asks for. `current`: the record as
    this transaction read it already, with `RECORD_AND_ITEM_COLUMNS`."""
    record = current if current is not None else await record_and_item(conn, record_id)
    await set_fix_statuses(
        conn, [record_id], FixStatus.DISPATCHED, "", now, dispatched=True, current=record
    )
    return record


async def fix_status(conn: AsyncConnection, record_id: int) -> FixStatus | None:
    """The fix record's status; None if there is no such record."""
    status = (await hot.run(conn, _FIX_STATUS, {"record_id": record_id})).scalar()
    return None if status is None else FixStatus(status)


# Where `versions_bumped_once` keeps the tasks to bump in the connection's `info`.
_TASKS_TO_BUMP = "vulfix.tasks_to_bump"


async def bump_versions(conn: AsyncConnection, fix_ids: Iterable[int]) -> None:
    deferred: set[int] | None = conn.info.get(_TASKS_TO_BUMP)
    if deferred is not None:
        deferred.update(fix_ids)
        return
    for fix_id in sorted(set(fix_ids)):
        await hot.run(conn, _BUMP_VERSION, {"target_fix": fix_id})


@asynccontextmanager
async def versions_bumped_once(conn: AsyncConnection) -> AsyncIterator[None]:
    """The block's changes bump each task they touch once, when the block ends without an
    error (a block that fails is rolled back: nothing to bump)."""
    deferred: set[int] = set()
    # Held here: once the database link breaks, `conn.info` itself raises until rollback.
    info = conn.info
    info[_TASKS_TO_BUMP] = deferred
    try:
        yield
    finally:
        # `info` outlives the transaction: the connection goes back to the pool.
        del info[_TASKS_TO_BUMP]
    await bump_versions(conn, deferred)


async def set_snapshot_status(
    conn: AsyncConnection,
    record_id: int,
    new: SnapshotStatus,
    reason: str,
    now: datetime,
    *,
    snapshot_id: str | None = None,
    retried: bool | None = None,
    current: Any = None,
) -> tuple[int, int] | None:
    """Moves one snapshot record; returns (fix_id, host_id), or None if it had moved already.
    `current`: the record as this transaction read it (`snapshot_record`)."""
    row = current if current is not None else await snapshot_record(conn, record_id)
    if row is None:
        return None
    old = SnapshotStatus(row.status)
    transitions.check_snapshot(old, new)
    values: dict[str, object] = {
        "status": int(new),
        "fail_reason": reason,
        "modified_at": to_stored(now),
    }
    if snapshot_id is not None:
        values["snapshot_id"] = snapshot_id
    if retried is not None:
        values["retried"] = retried
    statement = _guarded_update(snapshot_records, tuple(values))
    parameters = {f"new_{k}": v for k, v in values.items()} | {
        "target_id": record_id,
        "old_status": int(old),
    }
    if (await hot.run(conn, statement, parameters)).rowcount != 1:
        return None
    await bump_versions(conn, [row.fix_id])
    return int(row.fix_id), int(row.host_id)


async def set_fix_statuses(
    conn: AsyncConnection,
    record_ids: Iterable[int],
    new: FixStatus,
    reason: str,
    now: datetime,
    *,
    exit_code: int | None = None,
    output_tail: str | None = None,
    dispatched: bool = False,
    current: Any = None,
) -> list[int]:
    """Moves fix records that may legally go to `new`; returns the ids that moved.
    `current`: the one record given, as this transaction read it (a `FixRecord`)."""
    ids = list(record_ids)
    if not ids:
        return []
    if current is not None:
        rows = [current]
    elif len(ids) == 1:
        rows = list((await hot.run(conn, _FIX_RECORD, {"record_id": ids[0]})).all())
    else:
        query = (
            select(*_FIX_RECORD_COLUMNS)
            .join(fix_items, fix_items.c.id == fix_records.c.item_id)
            .where(fix_records.c.id.in_(ids))
        )
        rows = list((await conn.execute(query)).all())
    for row in rows:
        transitions.check_fix(FixStatus(row.status), new)
    values: dict[str, object] = {
        "status": int(new),
        "fail_reason": reason,
        "modified_at": to_stored(now),
    }
    if dispatched:
        values["dispatched_at"] = to_stored(now)
    if exit_code is not None or output_tail is not None:
        values["exit_code"] = exit_code
        values["output_tail"] = output_tail or ""
    statement = _guarded_update(fix_records, tuple(values))
    shared = {f"new_{k}": v for k, v in values.items()}
    moved = []
    for row in rows:
        parameters = shared | {"target_id": row.id, "old_status": row.status}
        if (await hot.run(conn, statement, parameters)).rowcount == 1:
            moved.append(row)  # (another writer may have moved a record first)
    await bump_versions(conn, [row.fix_id for row in moved])
    if new != FixStatus.DISPATCHED:  # 0 -> 1 leaves the finding "fixing" (5)
        for fix_id, host_id, vul_id in sorted({(r.fix_id, r.host_id, r.vul_id) for r in moved}):
            await refresh_finding(conn, int(fix_id), int(host_id), int(vul_id), now)
    return [int(row.id) for row in moved]


async def refresh_finding(
    conn: AsyncConnection, fix_id: int, host_id: int, vul_id: int, now: datetime
) -> None:
    parameters = {"fix_id": fix_id, "host_id": host_id, "vul_id": vul_id}
    statuses = (await hot.run(conn, _FINDING_RECORDS, parameters)).scalars()
    state = transitions.finding_state(FixStatus(s) for s in statuses)
    update_parameters = {
        "target_host": host_id,
        "target_vul": vul_id,
        "state": state,
        "stamp": to_stored(now),
    }
    await hot.run(conn, _SET_FINDING, update_parameters)


async def waiting_fix_records(conn: AsyncConnection, fix_id: int, host_id: int) -> list[int]:
    query = select(fix_records.c.id).where(
        fix_records.c.fix_id == fix_id,
        fix_records.c.host_id == host_id,
        fix_records.c.status == int(FixStatus.WAITING),
    )
    return [int(r) for r in (await conn.execute(query)).scalars()]


async def fail_snapshot(
    conn: AsyncConnection, record_id: int, reason: str, now: datetime, *, current: Any = None
) -> tuple[int, int] | None:
    """Snapshot record -> 2, and its host's waiting fixes in that task -> 4."""
    moved = await set_snapshot_status(
        conn, record_id, SnapshotStatus.FAILED, reason, now, current=current
    )
    if moved is not None:
        fix_id, host_id = moved
        waiting = await waiting_fix_records(conn, fix_id, host_id)
        await set_fix_statuses(
            conn, waiting, FixStatus.SNAPSHOT_FAILED, transitions.REASON_SNAPSHOT_FAILED, now
        )
    return moved
