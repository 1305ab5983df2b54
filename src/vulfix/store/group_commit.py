"""Group commit: concurrent agent operations share one write transaction on SQLite.

SQLite runs one writer at a time, so agent requests' transactions ran one after another
anyway, and each paid its own connection checkout, BEGIN IMMEDIATE and COMMIT: on a busy
server the COMMIT alone (appending the changed pages to the WAL) cost more than the
statements of a typical agent operation. Operations that arrive while a transaction runs now
wait for it and then go together in the next one, at most `MAX_BATCH` of them, so an idle
server commits an operation at once and a busy one commits many in one transaction, and an
API call waits behind one transaction at most.

Nothing changes for a caller. Each operation runs as it would alone, its effects committed
before it returns; should one of them raise, the transaction is rolled back and every
operation of the batch runs again in a transaction of its own, so one failure never undoes
another's work. When the database itself fails, every caller of the batch gets that failure
(agents resend: every agent call is safe to repeat).

PostgreSQL keeps a transaction per operation: there, replicas write at once, and two
replicas' batches could take the same rows' locks in opposite orders.

A `scope` opened around the operations of each transaction lets the store finish work they
share once per transaction instead of once per operation (`record_updates.versions_bumped_once`).

A write whose caller needs neither its result nor to wait for it (a host's last-seen time,
`write_soon`) is queued instead: the next transaction writes it before its operations, and
if none is due, one starts within `SOON` seconds, so that an idle fleet's writes share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.fixing.errors import StorageUnavailable
from vulfix.store import hot_statements as hot
from vulfix.store.database import write_once, write_transaction

log = logging.getLogger("vulfix.engine")

T = TypeVar("T")
Operation = Callable[[AsyncConnection], Awaitable[T]]
Scope = Callable[[AsyncConnection], AbstractAsyncContextManager[None]]

# Operations in one transaction at most: an API call on SQLite's one connection waits for at
# most this many agent operations. 128 cost the engine 14 % less CPU a job than 32, and a full
# transaction holds the connection for about 7 ms (21 ms at the 99th percentile); 256 saved
# nothing more and held it twice as long (bench/group_commit_size.py).
MAX_BATCH = 128
# How long a queued write waits for company when no transaction is due.
SOON = 0.05


class GroupCommit:
    def __init__(self, engine: AsyncEngine, scope: Scope | None = None) -> None:
        self._engine = engine
        self._scope = scope
        self.max_batch = MAX_BATCH if engine.dialect.name == "sqlite" else 1
        self._waiting: list[tuple[Operation[Any], asyncio.Future[Any]]] = []
        self._soon: list[tuple[Executable, dict[str, Any]]] = []
        self._soon_timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None

    async def run(self, operation: Operation[T]) -> T:
        """`operation` in a write transaction, committed when this returns."""
        if self.max_batch == 1:
            async with self._transaction() as conn:
                return await operation(conn)
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((operation, done))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        return await done

    async def write_soon(self, statement: Executable, parameters: dict[str, Any]) -> None:
        """One write statement that need not be in before this returns, nor succeed: it
        joins the next shared transaction when batching (a failure is logged, and the next
        such write makes up for it), and runs alone before this returns otherwise."""
        if self.max_batch == 1:
            await write_once(self._engine, statement, parameters)
            return
        self._soon.append((statement, parameters))
        if self._writer is None and self._soon_timer is None:
            self._soon_timer = asyncio.get_running_loop().call_later(SOON, self._write_soon_now)

    async def flush(self) -> None:
        """Returns once the writes queued by `write_soon` so far are in (or have failed):
        those still queued, and those of a transaction under way."""
        if self._soon or self._writer is not None:
            await self.run(_nothing)

    def _write_soon_now(self) -> None:
        self._soon_timer = None
        if self._writer is None and self._soon:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        async with write_transaction(self._engine) as conn:
            if self._scope is None:
                yield conn
            else:
                async with self._scope(conn):
                    yield conn

    async def _write(self) -> None:
        batch: list[tuple[Operation[Any], asyncio.Future[Any]]] = []
        try:
            while self._waiting or self._soon:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                soon, self._soon = self._soon, []
                await self._commit(batch, soon)
        finally:
            self._writer = None
            # Only if cancelled (the server stopping) may callers still wait: release them.
            for _operation, done in batch + self._waiting:
                if not done.done():
                    done.cancel()
            self._waiting.clear()

    async def _commit(
        self,
        batch: list[tuple[Operation[Any], asyncio.Future[Any]]],
        soon: list[tuple[Executable, dict[str, Any]]],
    ) -> None:
        if len(batch) + len(soon) > 1:
            results: list[Any] = []
            try:
                async with self._transaction() as conn:
                    await _write_each(conn, soon)
                    for operation, _done in batch:
                        results.append(await operation(conn))
            except StorageUnavailable as error:
                if soon:
                    log.warning("%d queued writes were lost: %s", len(soon), error)
                for _operation, done in batch:
                    _settle(done, error=error)
                return
            except Exception:
                log.debug("an operation failed in a shared transaction: each runs on its own")
            else:
                for (_operation, done), result in zip(batch, results, strict=True):
                    _settle(done, result)
                return
        if soon:
            await self._write_alone(soon)
        for operation, done in batch:
            try:
                async with self._transaction() as conn:
                    result = await operation(conn)
            except Exception as error:
                _settle(done, error=error)
            else:
                _settle(done, result)

    async def _write_alone(self, soon: list[tuple[Executable, dict[str, Any]]]) -> None:
        try:
            async with self._transaction() as conn:
                await _write_each(conn, soon)
        except Exception as error:
            log.warning("%d queued writes were lost: %s", len(soon), error)


async def _write_each(conn: AsyncConnection, soon: list[tuple[Executable, dict[str, Any]]]) -> None:
    """The queued writes; one that fails is logged and left out (SQLite undoes a failed
    statement alone), and the transaction goes on."""
    for statement, parameters in soon:
        try:
            await hot.run(conn, statement, parameters)
        except DBAPIError as error:
            log.warning("a queued write was lost: %s", error.orig)


async def _nothing(_conn: AsyncConnection) -> None:
    return None


def _settle(done: asyncio.Future[Any], result: Any = None, error: Exception | None = None) -> None:
    if done.cancelled():  # the caller went away; its operation ran all the same
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)
