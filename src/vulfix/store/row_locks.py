"""Locks that make concurrent writers on PostgreSQL behave as SQLite's one-at-a-time writers.

SQLite serialises every write transaction (`BEGIN IMMEDIATE`), so each function here does
nothing there. PostgreSQL runs writers at READ COMMITTED side by side: each statement sees
what had committed when it started. Decisions that read and then write take a lock first,
so that whoever decides second sees what the first one wrote:

- a **task** row before touching the task's jobs or records (claims, reports, retries,
  cancels and sweeps on one task take turns; admission and finding states stay exact);
- **host** rows, last of all and in id order, before reading whether a host is idle and what
  it should run next (no job is lost between one replica finishing a host's job and another
  giving it new work);
- the **account** row before creating a task or importing an inventory (two requests can
  never both claim the same pending finding);
- a transaction-level advisory lock that lets one replica sweep at a time.

Order: account, task, job and record rows, host rows. A transaction never takes a task lock
after a host lock, and only a sweep (one at a time) holds several task locks, so these
locks cannot deadlock one another. Row locks are `FOR NO KEY UPDATE`: they exclude each
other and plain updates, but not the key-share locks that foreign-key checks take, and they
cost no shared lock-table entries however many hosts a task has.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.store.bounded_in import chunks
from vulfix.store.inventory_tables import hosts
from vulfix.store.tables import accounts, fix_tasks

# Advisory lock keys: (vulfix's namespace, purpose), apart from the migration lock.
LOCK_NAMESPACE = 0x7666
SWEEP_LOCK = 1
ACCOUNT_CREATION_LOCK = 2


def is_serialised(conn: AsyncConnection) -> bool:
    """True where the database already runs one writer at a time (SQLite)."""
    return conn.dialect.name != "postgresql"


async def lock_task(conn: AsyncConnection, fix_id: int) -> None:
    if is_serialised(conn):
        return
    query = (
        select(fix_tasks.c.fix_id)
        .where(fix_tasks.c.fix_id == fix_id)
        .with_for_update(key_share=True)
    )
    await conn.execute(query)


async def lock_hosts(conn: AsyncConnection, host_ids: Iterable[int]) -> None:
    if is_serialised(conn):
        return
    # Ascending pieces keep one global order, so two lockers of overlapping sets never wait
    # on each other in a circle.
    for piece in chunks(sorted(set(host_ids))):
        query = (
            select(hosts.c.id)
            .where(hosts.c.id.in_(piece))
            .order_by(hosts.c.id)
            .with_for_update(key_share=True)
        )
        await conn.execute(query)


async def lock_account(conn: AsyncConnection, account_id: int) -> None:
    if is_serialised(conn):
        return
    query = select(accounts.c.id).where(accounts.c.id == account_id).with_for_update(key_share=True)
    await conn.execute(query)


async def serialise_account_creation(conn: AsyncConnection) -> None:
    """Held until commit: concurrent creators of accounts (names, AppIds) take turns."""
    if is_serialised(conn):
        return
    await conn.execute(select(func.pg_advisory_xact_lock(LOCK_NAMESPACE, ACCOUNT_CREATION_LOCK)))


async def take_sweep_turn(conn: AsyncConnection) -> bool:
    """True if this transaction may sweep; False while another replica's sweep runs."""
    if is_serialised(conn):
        return True
    query = select(func.pg_try_advisory_xact_lock(LOCK_NAMESPACE, SWEEP_LOCK))
    return bool((await conn.execute(query)).scalar_one())
