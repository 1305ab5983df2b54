from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from vulfix.store.database import create_blocking_engine
from vulfix.store.migrate import current_revision, head_revision, upgrade
from vulfix.store.schema import metadata


def _table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def test_upgrade_creates_the_database_file_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "vulfix.db"
    upgrade(f"sqlite:///{path}")
    assert {"accounts", "api_keys", "fix_tasks", "alembic_version"} <= _table_names(path)
    head = head_revision()
    assert head is not None and current_revision(f"sqlite:///{path}") == head


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vulfix.db'}"
    upgrade(url)
    with sqlite3.connect(tmp_path / "vulfix.db") as conn:
        conn.execute(
            "INSERT INTO accounts (name, app_id, created_at) VALUES ('a', 1, '2024-01-01')"
        )
    upgrade(url)
    with sqlite3.connect(tmp_path / "vulfix.db") as conn:
        assert conn.execute("SELECT name FROM accounts").fetchall() == [("a",)]
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (head_revision(),)
        ]


def test_upgrade_switches_the_database_to_wal(tmp_path: Path) -> None:
    upgrade(f"sqlite:///{tmp_path / 'vulfix.db'}")
    with sqlite3.connect(tmp_path / "vulfix.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_current_revision_of_a_missing_file_is_none_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "vulfix.db"
    assert current_revision(f"sqlite:///{path}") is None
    assert not path.parent.exists()


def test_migrations_build_exactly_the_schema_in_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vulfix.db'}"
    upgrade(url)
    engine = create_blocking_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_fix_ids_are_never_reused_after_deleting_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "vulfix.db"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO accounts (name, app_id, created_at) VALUES ('a', 1, '2024-01-01')"
        )
        insert = "INSERT INTO fix_tasks (account_id, created_at) VALUES (1, '2024-01-01')"
        first = conn.execute(insert).lastrowid
        conn.execute("DELETE FROM fix_tasks WHERE fix_id = ?", (first,))
        second = conn.execute(insert).lastrowid
    assert first is not None and second is not None and second > first


def test_postgresql_upgrade_builds_exactly_the_schema_in_tables(empty_postgres_url: str) -> None:
    assert current_revision(empty_postgres_url) is None
    upgrade(empty_postgres_url)
    upgrade(empty_postgres_url)  # already current: nothing to do
    assert current_revision(empty_postgres_url) == head_revision()
    engine = create_blocking_engine(empty_postgres_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_postgresql_fix_ids_come_from_a_sequence_and_are_never_reused(postgres_url: str) -> None:
    engine = create_blocking_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO accounts (name, app_id, created_at) VALUES ('a', 1, now())")
            )
            insert = text(
                "INSERT INTO fix_tasks (account_id, created_at) VALUES (1, now()) RETURNING fix_id"
            )
            first = conn.execute(insert).scalar_one()
            conn.execute(text("DELETE FROM fix_tasks WHERE fix_id = :id"), {"id": first})
            second = conn.execute(insert).scalar_one()
    finally:
        engine.dispose()
    assert second > first
