"""Several engines on one database behave like several processes (the server and the CLI on
one SQLite file, or replicas on one PostgreSQL), starting with a database nobody migrated."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from vulfix.store.api_keys import ApiKeyStore, NewKey
from vulfix.store.database import create_engine
from vulfix.store.migrate import current_revision, head_revision, upgrade
from vulfix.store.secret_cipher import SecretCipher

WRITERS = 8
KEYS_EACH = 5
# Given, not loaded: a PostgreSQL URL would put the key file in the user's data directory.
MASTER_KEY = Fernet.generate_key()


def _run_writers(url: str, account_of: list[str]) -> list[NewKey]:
    cipher = SecretCipher(MASTER_KEY)
    # A writer that fails before the barrier breaks it instead of leaving the others waiting.
    start = threading.Barrier(len(account_of), timeout=60)
    created: list[NewKey] = []
    failures: list[BaseException] = []

    async def write(account: str) -> None:
        engine = create_engine(url)
        try:
            store = ApiKeyStore(engine, cipher)
            for _ in range(KEYS_EACH):
                created.append(await store.create_key(account, read_only=False))
        finally:
            await engine.dispose()

    def writer(account: str) -> None:
        try:
            upgrade(url)
            start.wait()
            asyncio.run(write(account))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in account_of]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return created


async def _listed(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        store = ApiKeyStore(engine, SecretCipher(MASTER_KEY))
        return [key.secret_id for key in await store.list_keys()]
    finally:
        await engine.dispose()


@pytest.fixture
def unmigrated_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'vulfix.db'}"
    return str(request.getfixturevalue("empty_postgres_url"))


async def test_concurrent_writers_on_a_fresh_database_all_succeed(unmigrated_url: str) -> None:
    url = unmigrated_url
    accounts = [f"account{n}" for n in range(WRITERS)]

    created = await asyncio.to_thread(_run_writers, url, accounts)

    assert current_revision(url) == head_revision()
    assert len(created) == WRITERS * KEYS_EACH
    assert sorted(await _listed(url)) == sorted(key.secret_id for key in created)
    app_ids = {key.account: key.app_id for key in created}
    assert sorted(app_ids.values()) == list(range(1_250_000_001, 1_250_000_001 + WRITERS))


async def test_concurrent_first_keys_of_one_account_create_it_once(unmigrated_url: str) -> None:
    url = unmigrated_url

    created = await asyncio.to_thread(_run_writers, url, ["shared"] * WRITERS)

    assert {key.app_id for key in created} == {1_250_000_001}
    assert len(await _listed(url)) == WRITERS * KEYS_EACH
