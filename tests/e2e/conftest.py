from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.processes import ServerProcess


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with rate limiting off, for tests that call in quick succession."""
    process = ServerProcess(tmp_path_factory.mktemp("server"), ("--rate-limit", "0")).start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the documented default of 20 requests/second per account and action."""
    process = ServerProcess(tmp_path_factory.mktemp("limited")).start()
    yield process
    process.stop()


def insert_bare_task(db_url: str, account_id: int) -> int:
    """A task row with no records yet, written as the engine would (until CreateVulFix exists)."""
    path = Path(db_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        cursor = conn.execute(
            "INSERT INTO fix_tasks (account_id, created_at) VALUES (?, ?)", (account_id, now)
        )
        return int(cursor.lastrowid or 0)


def account_id_of(db_url: str, account: str) -> int:
    path = Path(db_url.removeprefix("sqlite:///"))
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT id FROM accounts WHERE name = ?", (account,)).fetchone()[0])
