"""Fresh, migrated databases for tests, on SQLite and on PostgreSQL.

Migrating costs ~0.1 s, so each backend migrates once per session: SQLite into a template
file that every test copies, PostgreSQL into a template database that every test clones with
`CREATE DATABASE ... TEMPLATE` and drops afterwards. PostgreSQL is found through
`tests.services` (the server CI starts); where it is missing its tests skip with the reason,
or fail under `VULFIX_REQUIRE_SERVICES=1`.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.services import POSTGRES_ADMIN_URL, missing
from vulfix.store.migrate import upgrade

BACKENDS = ("sqlite", "postgresql")
# PostgreSQL clones made ahead of the tests that will use them.
SPARE_CLONES = 3


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def migrated_sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    upgrade(sqlite_url(path))
    return path


def copy_sqlite_template(template: Path, directory: Path) -> str:
    """A migrated database file of its own (the template's WAL was checkpointed on close)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "vulfix.db"
    shutil.copyfile(template, path)
    return sqlite_url(path)


class PostgresDatabases:
    """Databases on the test server: one migrated template per session, clones per test.

    A few clones are made ahead, and used ones dropped, on worker threads while tests run:
    CREATE DATABASE takes tens of ms on a quiet server and several times that on a busy
    one, often longer than the test that needs it."""

    def __init__(self, admin_url: str = POSTGRES_ADMIN_URL) -> None:
        self.admin_url = admin_url
        self._admin: psycopg.Connection | None = None
        self._unreachable: str | None = None
        self._template: str | None = None
        self._created: set[str] = set()
        self._workers = ThreadPoolExecutor(max_workers=SPARE_CLONES, thread_name_prefix="pg")
        self._worker_admins: list[psycopg.Connection] = []
        self._local = threading.local()
        self._spares: deque[Future[str]] = deque()

    def url_of(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def _connection(self) -> psycopg.Connection:
        if self._unreachable is None and self._admin is None:
            try:
                self._admin = psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3)
            except psycopg.OperationalError as exc:
                self._unreachable = str(exc).strip() or type(exc).__name__
        if self._admin is None:
            # Every later test reports the first failure instead of waiting out a timeout.
            missing(f"PostgreSQL at {self.admin_url}", self._unreachable or "no connection")
            raise AssertionError("unreachable")  # `missing` skipped or failed already
        return self._admin

    def _worker_connection(self) -> psycopg.Connection:
        admin: psycopg.Connection | None = getattr(self._local, "admin", None)
        if admin is None:
            admin = self._local.admin = psycopg.connect(self.admin_url, autocommit=True)
            self._worker_admins.append(admin)
        return admin

    def _create(self, template: str | None, admin: psycopg.Connection) -> str:
        name = f"vulfix_t_{secrets.token_hex(6)}"
        clause = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{clause}')
        return name

    def _clone(self) -> str:
        return self._create(self._template, self._worker_connection())

    def _drop(self, name: str) -> None:
        # FORCE ends sessions a failed test left open.
        self._worker_connection().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _handed_out(self, name: str) -> str:
        self._created.add(name)
        return self.url_of(name)

    def empty(self) -> str:
        """The URL of a new database with no tables at all."""
        return self._handed_out(self._create(None, self._connection()))

    def migrated(self) -> str:
        """The URL of a new database at the newest revision."""
        if self._template is None:
            template = self._handed_out(self._create(None, self._connection()))
            upgrade(template)  # disposes its engine: no session stays open
            self._template = make_url(template).database
            # A session on the template (autovacuum's, say) would make each clone wait.
            self._connection().execute(f'ALTER DATABASE "{self._template}" ALLOW_CONNECTIONS false')
        while len(self._spares) < SPARE_CLONES + 1:
            self._spares.append(self._workers.submit(self._clone))
        return self._handed_out(self._spares.popleft().result())

    def drop(self, url: str) -> None:
        """Drops the database in the background: the next test need not wait for it."""
        name = make_url(url).database
        if name in self._created:
            self._created.discard(name)
            self._workers.submit(self._drop, name)

    def close(self) -> None:
        self._created.update(spare.result() for spare in self._spares)
        for name in sorted(self._created):
            self._workers.submit(self._drop, name)
        self._workers.shutdown()  # waits for every drop
        for admin in [*self._worker_admins, self._admin]:
            if admin is not None:
                admin.close()
