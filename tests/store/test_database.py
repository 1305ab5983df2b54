from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.fixing.errors import StorageUnavailable
from vulfix.store.database import (
    UnsupportedDatabaseError,
    create_engine,
    normalize_url,
    read_row,
    read_transaction,
    sqlite_path,
    sync_url,
    write_once,
    write_transaction,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///relative/vulfix.db", "sqlite+aiosqlite:///relative/vulfix.db"),
        ("sqlite:////abs/vulfix.db", "sqlite+aiosqlite:////abs/vulfix.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p%40ss@db:5432/vulfix", "postgresql+asyncpg://u:p%40ss@db:5432/vulfix"),
        ("postgresql+psycopg://u@db/vulfix", "postgresql+asyncpg://u@db/vulfix"),
    ],
)
def test_normalize_url_picks_the_async_driver(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_sync_url_picks_the_blocking_driver() -> None:
    assert sync_url("sqlite+aiosqlite:////abs/v.db") == "sqlite:////abs/v.db"
    assert sync_url("postgresql://u@db/vulfix") == "postgresql+psycopg://u@db/vulfix"


@pytest.mark.parametrize("url", ["mysql://u@db/x", "not a url"])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(UnsupportedDatabaseError):
        normalize_url(url)


def test_sqlite_path_is_none_for_memory_and_postgresql() -> None:
    assert sqlite_path("sqlite:////abs/v.db") == Path("/abs/v.db")
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://db/x") is None


async def test_connections_get_the_pragmas(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'new' / 'v.db'}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
    finally:
        await engine.dispose()
    # synchronous 1 is NORMAL.
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "synchronous": 1,
    }


def _try_to_take_write_lock(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        other.close()


async def test_write_transaction_holds_the_write_lock_before_writing(
    sqlite_engine: AsyncEngine,
) -> None:
    engine = sqlite_engine
    path = sqlite_path(str(engine.url))
    assert path is not None
    async with write_transaction(engine) as conn:
        await conn.execute(text("SELECT count(*) FROM accounts"))
        assert not _try_to_take_write_lock(path)
    assert _try_to_take_write_lock(path)


async def test_read_transaction_leaves_writers_free(sqlite_engine: AsyncEngine) -> None:
    engine = sqlite_engine
    path = sqlite_path(str(engine.url))
    assert path is not None
    async with read_transaction(engine) as conn:
        await conn.execute(text("SELECT count(*) FROM accounts"))
        assert _try_to_take_write_lock(path)


async def test_write_transaction_rolls_back_on_error(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError):
        async with write_transaction(engine) as conn:
            await conn.execute(
                text(
                    "INSERT INTO accounts (name, app_id, created_at) VALUES ('a', 1, '2024-01-01')"
                )
            )
            raise RuntimeError("abort")
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM accounts"))).scalar() == 0


async def test_foreign_keys_are_enforced_and_surface_as_storage_unavailable(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(StorageUnavailable) as caught:
        async with write_transaction(engine) as conn:
            await conn.execute(
                text("INSERT INTO fix_tasks (account_id, created_at) VALUES (42, '2024-01-01')")
            )
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert "foreign key" in str(caught.value.__cause__).lower()


async def test_read_row_sees_what_was_committed_and_holds_nothing_after(
    engine: AsyncEngine,
) -> None:
    by_name = text("SELECT id, app_id FROM accounts WHERE name = :name")
    assert await read_row(engine, by_name, {"name": "acme"}) is None
    async with write_transaction(engine) as conn:
        await conn.execute(
            text("INSERT INTO accounts (name, app_id, created_at) VALUES ('acme', 7, '2024-01-01')")
        )
    row = await read_row(engine, by_name, {"name": "acme"})
    assert row is not None and row.app_id == 7
    async with write_transaction(engine) as conn:  # no transaction or lock was left behind
        await conn.execute(text("UPDATE accounts SET app_id = 8 WHERE name = 'acme'"))
    row = await read_row(engine, by_name, {"name": "acme"})
    assert row is not None and row.app_id == 8


async def test_read_row_failures_surface_as_storage_unavailable(engine: AsyncEngine) -> None:
    with pytest.raises(StorageUnavailable):
        await read_row(engine, text("SELECT no_such_column FROM accounts"), {})


async def test_write_once_commits_and_counts_the_rows_it_changed(engine: AsyncEngine) -> None:
    insert = text("INSERT INTO accounts (name, app_id, created_at) VALUES (:name, 1, '2024-01-01')")
    assert await write_once(engine, insert, {"name": "acme"}) == 1
    rename = text("UPDATE accounts SET name = :new WHERE name = :old")
    assert await write_once(engine, rename, {"new": "beta", "old": "nobody"}) == 0
    assert await write_once(engine, rename, {"new": "beta", "old": "acme"}) == 1
    async with engine.connect() as conn:  # committed, and seen by any other connection
        assert (await conn.execute(text("SELECT name FROM accounts"))).scalar_one() == "beta"
    with pytest.raises(StorageUnavailable):  # a second account with the same AppId
        await write_once(engine, insert, {"name": "gamma"})


async def test_write_once_holds_the_write_lock_only_while_it_runs(
    sqlite_engine: AsyncEngine,
) -> None:
    path = sqlite_path(str(sqlite_engine.url))
    assert path is not None
    insert = text("INSERT INTO accounts (name, app_id, created_at) VALUES ('a', 1, '2024-01-01')")
    await write_once(sqlite_engine, insert, {})
    assert _try_to_take_write_lock(path)
