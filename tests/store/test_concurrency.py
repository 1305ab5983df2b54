"""Several engines on one SQLite file behave like several processes (the server and the CLI)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from vulfix.settings import Settings
from vulfix.store.api_keys import ApiKeyStore, NewKey
from vulfix.store.database import create_engine
from vulfix.store.migrate import current_revision, head_revision, upgrade
from vulfix.store.secret_cipher import SecretCipher, load_master_key

WRITERS = 8
KEYS_EACH = 5


def _run_writers(url: str, account_of: list[str]) -> list[NewKey]:
    cipher = SecretCipher(load_master_key(Settings(db=url)))
    start = threading.Barrier(len(account_of))
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
        store = ApiKeyStore(engine, SecretCipher(load_master_key(Settings(db=url))))
        return [key.secret_id for key in await store.list_keys()]
    finally:
        await engine.dispose()


async def test_concurrent_writers_on_a_fresh_database_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vulfix.db'}"
    accounts = [f"account{n}" for n in range(WRITERS)]

    created = await asyncio.to_thread(_run_writers, url, accounts)

    assert current_revision(url) == head_revision()
    assert len(created) == WRITERS * KEYS_EACH
    assert sorted(await _listed(url)) == sorted(key.secret_id for key in created)
    app_ids = {key.account: key.app_id for key in created}
    assert sorted(app_ids.values()) == list(range(1_250_000_001, 1_250_000_001 + WRITERS))


async def test_concurrent_first_keys_of_one_account_create_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'vulfix.db'}"

    created = await asyncio.to_thread(_run_writers, url, ["shared"] * WRITERS)

    assert {key.app_id for key in created} == {1_250_000_001}
    assert len(await _listed(url)) == WRITERS * KEYS_EACH
