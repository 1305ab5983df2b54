from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.store.api_keys import ActiveKey, ApiKeyStore, InvalidAccountNameError
from vulfix.store.database import sqlite_path
from vulfix.store.secret_cipher import MasterKeyError, SecretCipher
from vulfix.store.tables import accounts, api_keys


async def test_create_key_returns_a_tencent_shaped_pair(store: ApiKeyStore) -> None:
    key = await store.create_key("alice", read_only=False)
    assert key.account == "alice"
    assert re.fullmatch(r"AKID[A-Za-z0-9]{32}", key.secret_id)
    assert re.fullmatch(r"[A-Za-z0-9]{32}", key.secret_key)
    assert 1_250_000_000 < key.app_id < 2**53


async def test_keys_of_one_account_share_it_and_accounts_get_distinct_app_ids(
    store: ApiKeyStore,
) -> None:
    first = await store.create_key("alice", read_only=False)
    second = await store.create_key("alice", read_only=True)
    other = await store.create_key("bob", read_only=False)
    assert first.app_id == second.app_id
    assert other.app_id == first.app_id + 1
    assert len({first.secret_id, second.secret_id, other.secret_id}) == 3
    assert first.secret_key != second.secret_key


async def test_list_keys_shows_everything_but_secrets(store: ApiKeyStore) -> None:
    before = datetime.now(UTC)
    alice = await store.create_key("alice", read_only=True)
    bob = await store.create_key("bob", read_only=False)

    listed = await store.list_keys()

    assert [(k.account, k.secret_id, k.read_only, k.status) for k in listed] == [
        ("alice", alice.secret_id, True, "enabled"),
        ("bob", bob.secret_id, False, "enabled"),
    ]
    assert listed[0].app_id == alice.app_id
    assert before - timedelta(seconds=1) <= listed[0].created_at <= datetime.now(UTC)
    assert not hasattr(listed[0], "secret_key")


async def test_list_keys_filters_by_account(store: ApiKeyStore) -> None:
    await store.create_key("alice", read_only=False)
    bob = await store.create_key("bob", read_only=False)
    assert [k.secret_id for k in await store.list_keys("bob")] == [bob.secret_id]
    assert await store.list_keys("nobody") == []


async def test_find_active_key_returns_an_enabled_key_with_its_secret(
    store: ApiKeyStore, engine: AsyncEngine
) -> None:
    key = await store.create_key("alice", read_only=True)
    async with engine.connect() as conn:
        account_id = (
            await conn.execute(select(accounts.c.id).where(accounts.c.name == "alice"))
        ).scalar_one()
    assert await store.find_active_key(key.secret_id) == ActiveKey(
        secret_id=key.secret_id,
        secret_key=key.secret_key,
        account_id=account_id,
        account_name="alice",
        app_id=key.app_id,
        read_only=True,
    )


async def test_disable_and_enable(store: ApiKeyStore) -> None:
    key = await store.create_key("alice", read_only=False)

    assert await store.set_enabled(key.secret_id, False) is True
    assert await store.find_active_key(key.secret_id) is None
    assert [k.status for k in await store.list_keys()] == ["disabled"]

    assert await store.set_enabled(key.secret_id, True) is True
    credential = await store.find_active_key(key.secret_id)
    assert credential is not None and credential.secret_key == key.secret_key
    assert [k.status for k in await store.list_keys()] == ["enabled"]


async def test_delete_removes_the_key_only(store: ApiKeyStore) -> None:
    doomed = await store.create_key("alice", read_only=False)
    kept = await store.create_key("alice", read_only=False)

    assert await store.delete_key(doomed.secret_id) is True
    assert await store.delete_key(doomed.secret_id) is False
    assert await store.find_active_key(doomed.secret_id) is None
    assert await store.find_active_key(kept.secret_id) is not None
    assert [k.secret_id for k in await store.list_keys()] == [kept.secret_id]


async def test_unknown_keys(store: ApiKeyStore) -> None:
    assert await store.find_active_key("AKIDdoesnotexist") is None
    assert await store.set_enabled("AKIDdoesnotexist", False) is False
    assert await store.delete_key("AKIDdoesnotexist") is False


async def test_secret_key_is_stored_encrypted(
    store: ApiKeyStore, engine: AsyncEngine, cipher: SecretCipher
) -> None:
    key = await store.create_key("alice", read_only=False)
    async with engine.connect() as conn:
        query = select(api_keys.c.secret_key_encrypted).where(api_keys.c.secret_id == key.secret_id)
        sealed = bytes((await conn.execute(query)).scalar_one())
    assert key.secret_key.encode() not in sealed
    assert cipher.decrypt(sealed) == key.secret_key
    path = sqlite_path(str(engine.url))
    if path is not None:  # nowhere in the file either
        assert key.secret_key.encode() not in path.read_bytes()


async def test_find_active_key_with_another_master_key_fails_loudly(
    store: ApiKeyStore, engine: AsyncEngine
) -> None:
    key = await store.create_key("alice", read_only=False)
    stranger = ApiKeyStore(engine, SecretCipher(Fernet.generate_key()))
    with pytest.raises(MasterKeyError):
        await stranger.find_active_key(key.secret_id)


@pytest.mark.parametrize("name", ["", " padded", "x" * 65, "tab\there"])
async def test_bad_account_names_are_refused(store: ApiKeyStore, name: str) -> None:
    with pytest.raises(InvalidAccountNameError):
        await store.create_key(name, read_only=False)
    assert await store.list_keys() == []


async def test_stored_rows_use_naive_utc(store: ApiKeyStore, engine: AsyncEngine) -> None:
    await store.create_key("alice", read_only=False)
    async with engine.connect() as conn:
        stored = (await conn.execute(select(api_keys.c.created_at))).scalar_one()
    assert stored.tzinfo is None
    assert abs(stored - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=5)
