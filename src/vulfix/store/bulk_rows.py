"""Many rows in one statement. On SQLite the driver's own executemany takes plain tuples:
SQLAlchemy's per-row parameter processing cost five times the insert itself for 10 000
rows. Other dialects go through SQLAlchemy Core. Table and column names come from our own
schema constants, never from input."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection


def stored_time(moment: datetime) -> str:
    """A naive-UTC time in the text form SQLAlchemy's SQLite DateTime stores and reads."""
    return moment.isoformat(sep=" ", timespec="microseconds")


def bulk_time(conn: AsyncConnection, moment: datetime) -> str | datetime:
    """A naive-UTC time as the rows of `insert_rows` and `update_rows` carry it: the text
    SQLite's fast path writes as is, or the datetime SQLAlchemy hands asyncpg."""
    return stored_time(moment) if conn.dialect.name == "sqlite" else moment


async def insert_rows(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        await conn.exec_driver_sql(sql, rows)
        return
    await conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


async def update_rows(
    conn: AsyncConnection,
    table: Table,
    set_columns: Sequence[str],
    key_columns: Sequence[str],
    rows: list[tuple[Any, ...]],
) -> None:
    """`UPDATE table SET set_columns WHERE key_columns` for each row (set values first)."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        assignments = ", ".join(f"{c} = ?" for c in set_columns)
        conditions = " AND ".join(f"{c} = ?" for c in key_columns)
        sql = f"UPDATE {table.name} SET {assignments} WHERE {conditions}"  # noqa: S608
        await conn.exec_driver_sql(sql, rows)
        return
    statement = (
        update(table)
        .where(*(table.c[c] == bindparam(f"key_{c}") for c in key_columns))
        .values({c: bindparam(f"set_{c}") for c in set_columns})
    )
    names = [f"set_{c}" for c in set_columns] + [f"key_{c}" for c in key_columns]
    await conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
