"""Database URLs and engines: one place that knows SQLite from PostgreSQL.

SQLite needs care to behave under several processes (the server and the CLI share one file):
WAL so readers never block the writer, a busy timeout so a waiting writer retries instead of
failing, and writes that take the write lock up front (`BEGIN IMMEDIATE`). A deferred
transaction that reads and then writes can find its snapshot stale once another process has
committed, and SQLite then fails it at once ("database is locked") without waiting.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import greenlet_spawn

from vulfix.fixing.errors import StorageUnavailable
from vulfix.store import inline_sqlite

_T = TypeVar("_T")

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}

# Execution option read by the SQLite `begin` hook; other dialects ignore it.
BEGIN_MODE_OPTION = "vulfix_sqlite_begin"
BUSY_TIMEOUT_MS = 5000

# PostgreSQL is across a network: every wait on it is bounded, so that an outage answers
# InternalError.MainDBFail instead of hanging. A stopped server refuses or resets connections,
# which fails a call at once (well within the API's 2 s); these bound a server or link that
# goes silent. Tighter bounds misfire: at 1 s, statements of the three-replica tests timed out
# on a loaded two-core machine (row-lock waits, backends starved of CPU).
# Opening a connection (TCP, startup, authentication): milliseconds on a healthy server.
CONNECT_TIMEOUT = 3.0
# One statement. TCP notices nothing while the peer's kernel still acknowledges (a hung
# server, a middlebox that lost the flow), so only this catches a silent link.
STATEMENT_TIMEOUT = 5.0
# Waiting for a pooled connection when all are busy (SQLAlchemy's default is 30 s): the pool
# stays exhausted only while its connections hang, each for at most the above.
POOL_TIMEOUT = 5.0
# Connections a process keeps to PostgreSQL (SQLAlchemy's defaults, named here because the
# agent API sizes its lane from them): this many pooled, and this many more at peaks.
POOL_SIZE = 5
MAX_OVERFLOW = 10
# The driver's own failures that leave a connection unusable: it timed out mid-protocol, or
# the socket failed. asyncpg raises them bare, not as DBAPI errors.
LINK_FAILURES = (TimeoutError, OSError)


class UnsupportedDatabaseError(ValueError):
    """The URL names a database other than SQLite or PostgreSQL, or is not a URL at all."""


def _with_driver(url: str, drivers: dict[str, str]) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UnsupportedDatabaseError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise UnsupportedDatabaseError(
            f"unsupported database URL {parsed!r}: use sqlite:///PATH or postgresql://..."
        )
    return parsed.set(drivername=drivers[backend])


def display_url(url: str) -> str:
    """The URL as given, with any password masked, for messages."""
    _with_driver(url, SYNC_DRIVERS)
    return make_url(url).render_as_string(hide_password=True)


def normalize_url(url: str) -> str:
    """`sqlite:///rel`, `sqlite:////abs`, `postgresql://...` -> the same URL on an async driver."""
    return _with_driver(url, ASYNC_DRIVERS).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The URL on a blocking driver, for alembic."""
    return _with_driver(url, SYNC_DRIVERS).render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return _with_driver(url, SYNC_DRIVERS).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL and in-memory SQLite."""
    parsed = _with_driver(url, SYNC_DRIVERS)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _prepare_sqlite_file(url: str) -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _install_sqlite_hooks(engine: Engine) -> None:
    """SQLAlchemy's recipe for explicit BEGIN with (aio)sqlite, plus per-connection PRAGMAs."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from issuing its own (deferred) BEGIN; `_on_begin` issues ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode")
            if cursor.fetchone()[0] != "wal":
                _switch_to_wal(cursor)
            cursor.execute("PRAGMA foreign_keys = ON")
            # Safe with WAL: a power loss may drop the last commits, never corrupt the file.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_MODE_OPTION, "DEFERRED")
        begin = f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}"
        # On the driver itself: through `exec_driver_sql` SQLAlchemy's execution machinery
        # cost more than the BEGIN, once per agent transaction. Its errors are SQLAlchemy's.
        try:
            sqlite_driver(conn).execute(begin)
        except sqlite3.Error as error:
            raise DBAPIError.instance(begin, (), error, sqlite3.Error) from error


def sqlite_driver(conn: Connection | None) -> sqlite3.Connection:
    """The `sqlite3` connection under `conn`, through our inline adapter where it runs."""
    assert conn is not None
    driver = conn.connection.driver_connection
    if isinstance(driver, inline_sqlite.Connection):
        return driver._live()
    assert isinstance(driver, sqlite3.Connection)
    return driver


def _switch_to_wal(cursor: Any) -> None:
    """Once per new file. Processes opening a new file at once race to switch it, and SQLite
    answers the losers "database is locked" at once, busy timeout or not: they try again."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _missing_driver(url: str, exc: ImportError) -> UnsupportedDatabaseError:
    return UnsupportedDatabaseError(
        f"{make_url(url).drivername} needs the Python package {exc.name!r}, which is not installed"
    )


def create_engine(url: str) -> AsyncEngine:
    """An async engine; for SQLite, one pooled connection serialises this process's access."""
    async_url = normalize_url(url)
    if not is_sqlite(async_url):
        try:
            engine = create_async_engine(
                async_url,
                # A pooled connection the server or the network dropped is replaced on checkout.
                pool_pre_ping=True,
                pool_size=POOL_SIZE,
                max_overflow=MAX_OVERFLOW,
                pool_timeout=POOL_TIMEOUT,
                connect_args={"timeout": CONNECT_TIMEOUT, "command_timeout": STATEMENT_TIMEOUT},
            )
        except ImportError as exc:
            raise _missing_driver(async_url, exc) from exc
        event.listen(engine.sync_engine, "handle_error", _drop_broken_links)
        event.listen(engine.sync_engine, "invalidate", _abort_invalidated)
        return engine
    _prepare_sqlite_file(async_url)
    engine = create_async_engine(
        async_url,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1,
        max_overflow=0,
        # sqlite3 calls run inline on the event loop instead of in aiosqlite's thread.
        module=AsyncAdapt_aiosqlite_dbapi(inline_sqlite, sqlite3),
    )
    _install_sqlite_hooks(engine.sync_engine)
    return engine


def connection_capacity(engine: AsyncEngine) -> int:
    """How many connections `engine` may hold at once: SQLite's one, or the pool's peak."""
    return 1 if engine.dialect.name == "sqlite" else POOL_SIZE + MAX_OVERFLOW


def create_blocking_engine(url: str) -> Engine:
    """A blocking engine with the same SQLite behaviour, for migrations."""
    blocking_url = sync_url(url)
    if not is_sqlite(blocking_url):
        try:
            return create_sync_engine(blocking_url)
        except ImportError as exc:
            raise _missing_driver(blocking_url, exc) from exc
    _prepare_sqlite_file(blocking_url)
    engine = create_sync_engine(blocking_url)
    _install_sqlite_hooks(engine)
    return engine


def _drop_broken_links(context: ExceptionContext) -> None:
    """asyncpg's timeouts and socket errors are not DBAPI errors, so SQLAlchemy would roll
    back on the connection (waiting out another timeout) and pool it again: count them as a
    disconnect, which drops the connection at once. The pool's other connections stay: each
    is checked before use, and on a silent link the next timeout drops it in turn."""
    if isinstance(context.original_exception, LINK_FAILURES):
        context.is_disconnect = True
        context.invalidate_pool_on_disconnect = False


def _abort_invalidated(dbapi_connection: Any, _record: Any, _error: BaseException | None) -> None:
    """An invalidated connection is broken: SQLAlchemy's graceful close would wait up to 2 s
    for a goodbye (and for asyncpg's pending cancel) over the link that just failed."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None:
        driver.terminate()


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: on SQLite it holds the write lock from its first statement."""
    with storage_errors():
        async with engine.connect() as conn:
            await conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
            async with conn.begin():
                yield conn


@asynccontextmanager
async def read_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction: one consistent snapshot, no write lock.

    SQLite gives a deferred transaction one snapshot from its first read; PostgreSQL's default
    READ COMMITTED would give each statement its own, so a task read in several statements
    could mix records from before and after another replica's commit. REPEATABLE READ READ
    ONLY is one snapshot and never fails for serialisation (asyncpg sets it in its BEGIN)."""
    with storage_errors():
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            async with conn.begin():
                yield conn


async def read_row(
    engine: AsyncEngine, statement: Executable, parameters: dict[str, Any]
) -> Row[Any] | None:
    """The first row of one read statement, in one hop into SQLAlchemy's greenlet.

    Through the async API, connect, begin, execute, commit and close each cost a hop (and
    an event-loop turn), together three times the statement itself: 370 us against 100 us
    for the task-version read behind every DescribeVulFixStatus."""
    row: Row[Any] | None = await _alone(
        engine, lambda conn: conn.execute(statement, parameters).first(), write=False
    )
    return row


async def read_rows(
    engine: AsyncEngine, statement: Executable, parameters: dict[str, Any]
) -> Sequence[Row[Any]]:
    """Every row of one read statement, in one hop (see `read_row`)."""
    return await _alone(engine, lambda conn: conn.execute(statement, parameters).all(), write=False)


async def write_once(engine: AsyncEngine, statement: Executable, parameters: dict[str, Any]) -> int:
    """One write statement in a transaction of its own, in one hop (see `read_row`); the
    number of rows it changed."""
    changed: int = await _alone(
        engine, lambda conn: int(conn.execute(statement, parameters).rowcount), write=True
    )
    return changed


async def _alone(engine: AsyncEngine, run: Callable[[Connection], _T], *, write: bool) -> _T:
    """`run` on a connection of its own, in one greenlet hop. One statement is atomic and
    sees one snapshot on both engines, so PostgreSQL runs it outside a transaction (no BEGIN
    and COMMIT round trips); SQLite's BEGIN and COMMIT are calls in-process, and a write
    takes the write lock up front as every write here does."""

    def hop() -> _T:
        with engine.sync_engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            elif write:
                conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
            with conn.begin():
                return run(conn)

    with storage_errors():
        result: _T = await greenlet_spawn(hop)
        return result


@contextmanager
def storage_errors() -> Iterator[None]:
    """Database failures leave the store as the domain's `StorageUnavailable` (the API's
    InternalError.MainDBFail); the original stays chained for the log. Besides DBAPI errors
    and an exhausted pool, asyncpg lets a refused connection (OSError) or a timeout through
    bare."""
    try:
        yield
    except (DBAPIError, PoolTimeoutError, *LINK_FAILURES) as error:
        raise StorageUnavailable(
            "The database failed or could not be reached.", "数据库操作失败或无法连接。"
        ) from error
