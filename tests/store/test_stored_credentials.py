"""The store's keys behind the wire layer's credential cache, as `vulfix.app` wires them."""

from __future__ import annotations

from vulfix.app import StoredCredentials
from vulfix.store.api_keys import ApiKeyStore
from vulfix.tcapi.credential_cache import CachedCredentialSource


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_disabling_in_the_database_takes_effect_within_the_ttl(store: ApiKeyStore) -> None:
    key = await store.create_key("alice", read_only=False)
    clock = FakeClock()
    cache = CachedCredentialSource(StoredCredentials(store), ttl=1.0, clock=clock)
    assert await cache.lookup(key.secret_id) is not None

    await store.set_enabled(key.secret_id, False)
    assert await cache.lookup(key.secret_id) is not None  # still cached
    clock.now += 1.0
    assert await cache.lookup(key.secret_id) is None

    await store.set_enabled(key.secret_id, True)
    clock.now += 1.0
    credential = await cache.lookup(key.secret_id)
    assert credential is not None and credential.secret_key == key.secret_key
