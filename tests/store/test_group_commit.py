"""Group commit: agent operations arriving together share a transaction on SQLite, and each
caller still gets exactly its own outcome; PostgreSQL keeps one transaction each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.fixing.errors import StorageUnavailable
from vulfix.store.database import read_transaction
from vulfix.store.group_commit import MAX_BATCH, SOON, GroupCommit
from vulfix.store.record_updates import versions_bumped_once
from vulfix.store.tables import accounts

CREATED = datetime(2026, 12, 5, 8, 0, 0)
_ADD = insert(accounts).values(name=bindparam("name"), app_id=bindparam("app"), created_at=CREATED)


class Refused(Exception):
    """A domain refusal raised half-way through an operation."""


def adding(name: str, app: int, *, then_fail: bool = False):  # type: ignore[no-untyped-def]
    async def operation(conn: AsyncConnection) -> str:
        await conn.execute(_ADD, {"name": name, "app": app})
        if then_fail:
            raise Refused(name)  # after writing: the write must not survive
        return name

    return operation


def transactions_begun(engine: AsyncEngine) -> Callable[[], int]:
    """How many transactions `engine` has begun since this call, committed or not."""
    begun = 0

    def count(_conn: object) -> None:
        nonlocal begun
        begun += 1

    event.listen(engine.sync_engine, "begin", count)
    return lambda: begun


async def names(engine: AsyncEngine) -> set[str]:
    async with read_transaction(engine) as conn:
        return set((await conn.execute(select(accounts.c.name))).scalars())


async def test_operations_arriving_together_share_one_transaction(
    sqlite_engine: AsyncEngine,
) -> None:
    group = GroupCommit(sqlite_engine)
    begun = transactions_begun(sqlite_engine)
    results = await asyncio.gather(*(group.run(adding(f"a{n}", n)) for n in range(10)))
    assert results == [f"a{n}" for n in range(10)], "each caller gets its own result"
    assert begun() == 1
    assert await names(sqlite_engine) == {f"a{n}" for n in range(10)}


async def test_a_transaction_holds_at_most_max_batch_operations(
    sqlite_engine: AsyncEngine,
) -> None:
    group = GroupCommit(sqlite_engine)
    begun = transactions_begun(sqlite_engine)
    await asyncio.gather(*(group.run(adding(f"a{n}", n)) for n in range(MAX_BATCH + 1)))
    assert begun() == 2
    assert len(await names(sqlite_engine)) == MAX_BATCH + 1


async def test_a_failing_operation_undoes_only_itself(sqlite_engine: AsyncEngine) -> None:
    group = GroupCommit(sqlite_engine)
    outcomes = await asyncio.gather(
        group.run(adding("kept-1", 1)),
        group.run(adding("refused", 2, then_fail=True)),
        group.run(adding("kept-2", 3)),
        return_exceptions=True,
    )
    assert outcomes[0] == "kept-1" and outcomes[2] == "kept-2"
    assert isinstance(outcomes[1], Refused)
    assert await names(sqlite_engine) == {"kept-1", "kept-2"}


async def test_a_database_failure_reaches_every_caller_of_its_transaction(
    sqlite_engine: AsyncEngine,
) -> None:
    group = GroupCommit(sqlite_engine)
    begun = transactions_begun(sqlite_engine)

    async def broken(conn: AsyncConnection) -> None:
        raise StorageUnavailable("gone") from OperationalError("COMMIT", {}, Exception("disk"))

    outcomes = await asyncio.gather(
        group.run(adding("lost", 1)), group.run(broken), return_exceptions=True
    )
    assert all(isinstance(outcome, StorageUnavailable) for outcome in outcomes)
    assert begun() == 1, "not tried again one by one against a failed database"
    assert await names(sqlite_engine) == set()


async def test_a_caller_that_goes_away_leaves_the_others_whole(sqlite_engine: AsyncEngine) -> None:
    group = GroupCommit(sqlite_engine)
    leaving = asyncio.ensure_future(group.run(adding("left", 1)))
    staying = asyncio.ensure_future(group.run(adding("stayed", 2)))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await staying == "stayed"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    # Its operation had been handed over: it ran, as a request cut off mid-write may.
    assert await names(sqlite_engine) == {"left", "stayed"}


async def test_postgresql_keeps_a_transaction_per_operation(engine: AsyncEngine) -> None:
    group = GroupCommit(engine)
    begun = transactions_begun(engine)
    await asyncio.gather(*(group.run(adding(f"a{n}", n)) for n in range(4)))
    expected = 1 if engine.dialect.name == "sqlite" else 4
    assert begun() == expected
    assert group.max_batch == (MAX_BATCH if engine.dialect.name == "sqlite" else 1)
    assert await names(engine) == {f"a{n}" for n in range(4)}


_RENAME = update(accounts).where(accounts.c.name == bindparam("old")).values(name=bindparam("new"))


async def test_a_write_nobody_waits_for_joins_the_next_shared_transaction(
    engine: AsyncEngine,
) -> None:
    group = GroupCommit(engine)
    await group.run(adding("before", 1))
    begun = transactions_begun(engine)
    await group.write_soon(_RENAME, {"old": "before", "new": "after"})
    if engine.dialect.name != "sqlite":
        assert begun() == 1, "PostgreSQL: written alone before write_soon returned"
        assert await names(engine) == {"after"}
        return
    assert begun() == 0, "queued, not yet written"
    assert await group.run(adding("other", 2)) == "other"
    assert begun() == 1, "the queued write went in with the operation"
    assert await names(engine) == {"after", "other"}


async def test_queued_writes_share_a_transaction_started_within_soon_seconds(
    sqlite_engine: AsyncEngine,
) -> None:
    group = GroupCommit(sqlite_engine)
    await asyncio.gather(*(group.run(adding(f"a{n}", n)) for n in range(3)))
    begun = transactions_begun(sqlite_engine)
    for n in range(3):
        await group.write_soon(_RENAME, {"old": f"a{n}", "new": f"b{n}"})
    assert begun() == 0, "queued, not yet written"
    await asyncio.sleep(SOON * 4)  # nothing else runs: the queued writes start their own
    assert begun() == 1, "one transaction for the three"
    assert await names(sqlite_engine) == {"b0", "b1", "b2"}


async def test_flush_returns_once_the_queued_writes_are_in(sqlite_engine: AsyncEngine) -> None:
    group = GroupCommit(sqlite_engine)
    await group.run(adding("before", 1))
    await group.write_soon(_RENAME, {"old": "before", "new": "after"})
    await group.flush()
    assert await names(sqlite_engine) == {"after"}
    await group.flush()  # nothing queued: returns at once


async def test_flush_waits_for_the_queued_writes_of_a_transaction_under_way(
    sqlite_engine: AsyncEngine,
) -> None:
    group = GroupCommit(sqlite_engine)
    await group.run(adding("before", 1))
    started, release = asyncio.Event(), asyncio.Event()

    async def holding(_conn: AsyncConnection) -> None:
        started.set()
        await release.wait()  # the transaction, holding the queued write, stays open

    await group.write_soon(_RENAME, {"old": "before", "new": "after"})
    running = asyncio.ensure_future(group.run(holding))
    await started.wait()
    flushing = asyncio.ensure_future(group.flush())
    await asyncio.sleep(SOON * 2)
    assert not flushing.done(), "the queued write is not in until its transaction commits"
    release.set()
    await asyncio.gather(running, flushing)
    assert await names(sqlite_engine) == {"after"}


async def test_a_failing_queued_write_is_logged_and_costs_no_operation_its_work(
    sqlite_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    group = GroupCommit(sqlite_engine)
    await group.run(adding("taken", 1))
    await group.write_soon(_ADD, {"name": "taken", "app": 2})  # a duplicate: refused
    outcomes = await asyncio.gather(group.run(adding("kept", 3)), group.run(adding("also", 4)))
    assert outcomes == ["kept", "also"]
    assert await names(sqlite_engine) == {"taken", "kept", "also"}
    assert "a queued write was lost" in caplog.text


async def test_a_scope_wraps_each_transaction_once_and_never_outlives_a_failure(
    sqlite_engine: AsyncEngine,
) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def scope(conn: AsyncConnection) -> AsyncIterator[None]:
        assert conn.in_transaction()
        events.append("open")
        try:
            yield
        except Refused:
            events.append("failed")
            raise
        await conn.execute(_ADD, {"name": f"closing {len(events)}", "app": 100 + len(events)})
        events.append("close")

    group = GroupCommit(sqlite_engine, scope=scope)
    await asyncio.gather(group.run(adding("a", 1)), group.run(adding("b", 2)))
    assert events == ["open", "close"], "one scope around the shared transaction"
    assert await names(sqlite_engine) == {"a", "b", "closing 1"}

    events.clear()
    await asyncio.gather(
        group.run(adding("c", 3)), group.run(adding("d", 4, then_fail=True)), return_exceptions=True
    )
    # The shared transaction failed; each operation then ran in a transaction of its own.
    assert events == ["open", "failed", "open", "close", "open", "failed"]
    assert await names(sqlite_engine) == {"a", "b", "closing 1", "c", "closing 3"}


async def test_a_link_lost_inside_a_scope_reaches_the_caller_as_the_storage_failure(
    engine: AsyncEngine,
) -> None:
    group = GroupCommit(engine, scope=versions_bumped_once)

    async def link_lost(conn: AsyncConnection) -> None:
        await conn.invalidate()  # as when the database goes away mid-transaction
        raise StorageUnavailable("the link broke")

    with pytest.raises(StorageUnavailable, match="the link broke"):
        await group.run(link_lost)
    assert await group.run(adding("after", 1)) == "after", "the next operation finds a link"
