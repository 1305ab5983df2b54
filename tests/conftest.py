"""Database fixtures shared by every test package (see `tests/databases.py`).

`migrated_db_url` runs a test once per backend, ids `[sqlite]` and `[postgresql]`;
`postgres_url` and `empty_postgres_url` are for tests about PostgreSQL alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from tests.databases import (
    BACKENDS,
    PostgresDatabases,
    copy_sqlite_template,
    migrated_sqlite_template,
)


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def migrated_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own at the newest revision, on each backend in turn."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        yield copy_sqlite_template(template, tmp_path / "db")
        return
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    url = databases.migrated()
    yield url
    databases.drop(url)


@pytest.fixture
def fresh_databases(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], AbstractContextManager[str]]:
    """Makes more migrated databases on this test's backend (say, one per Hypothesis example)."""

    @contextmanager
    def fresh() -> Iterator[str]:
        if backend == "sqlite":
            template: Path = request.getfixturevalue("sqlite_template")
            yield copy_sqlite_template(template, tmp_path_factory.mktemp("db"))
            return
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        url = databases.migrated()
        try:
            yield url
        finally:
            databases.drop(url)

    return fresh


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    url = postgres_databases.migrated()
    yield url
    postgres_databases.drop(url)


@pytest.fixture
def empty_postgres_url(postgres_databases: PostgresDatabases) -> Iterator[str]:
    url = postgres_databases.empty()
    yield url
    postgres_databases.drop(url)
