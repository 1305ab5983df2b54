"""An aiosqlite-shaped DBAPI that runs `sqlite3` calls inline, on the event loop.

SQLAlchemy's async SQLite dialect drives aiosqlite, which runs every call in a worker thread:
each of the ~40 small statements behind one agent job paid a thread hand-off (about 0.3 ms
on a loaded core), so the engine spent most of its time handing off. SQLite in WAL mode
answers those statements in microseconds, so running them inline costs the event loop less
than the hand-off did (DESIGN §3). Only `create_engine` uses this; the store code is the
same for every dialect.

Trade-off: a statement that must wait for another process's write lock blocks the loop for
up to the busy timeout. The server is the only regular writer; the CLI's writes are short.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from sqlite3 import (  # noqa: F401  (the DBAPI surface SQLAlchemy reads from this module)
    DatabaseError,
    Error,
    IntegrityError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    sqlite_version,
    sqlite_version_info,
)
from typing import Any

__version__ = "0.22.1"  # the aiosqlite behaviour this mirrors, for the dialect's checks


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany() if size is None else self._cursor.fetchmany(size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _ImmediateQueue:
    """Stands in for aiosqlite's work queue: the dialect posts (future, function) pairs."""

    def put_nowait(self, item: tuple[Any, Callable[[], None]]) -> None:
        future, function = item
        try:
            function()
        except Exception as error:
            future.set_exception(error)
        else:
            future.set_result(None)


@dataclass
class _NoThread:
    daemon: bool = True


class Connection:
    def __init__(self, database: str, **kwargs: Any) -> None:
        kwargs.pop("loop", None)
        kwargs.pop("iter_chunk_size", None)
        kwargs["check_same_thread"] = False  # SQLAlchemy may close it from another thread
        self._conn: sqlite3.Connection | None = sqlite3.connect(database, **kwargs)
        self._tx = _ImmediateQueue()
        self._thread = _NoThread()

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._opened().__await__()

    async def _opened(self) -> Connection:
        return self

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("Connection closed")
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._live().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._live().isolation_level = value

    def cursor(self) -> Cursor:
        return Cursor(self._live().cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._live().commit()

    async def rollback(self) -> None:
        self._live().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live().create_function(*args, **kwargs)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def connect(database: str, **kwargs: Any) -> Connection:
    return Connection(database, **kwargs)
