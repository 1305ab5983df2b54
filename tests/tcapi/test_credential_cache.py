from __future__ import annotations

from dataclasses import dataclass, field

from vulfix.tcapi.credential_cache import CachedCredentialSource
from vulfix.tcapi.credentials import Credential


def _credential(secret_id: str) -> Credential:
    return Credential(secret_id, "key-" + secret_id, 1, "alice", 1_250_000_001, False)


@dataclass
class CountingSource:
    known: dict[str, Credential] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def lookup(self, secret_id: str) -> Credential | None:
        self.calls.append(secret_id)
        return self.known.get(secret_id)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_found_keys_are_served_from_cache_until_the_ttl_passes() -> None:
    source, clock = CountingSource({"AKIDa": _credential("AKIDa")}), FakeClock()
    cache = CachedCredentialSource(source, ttl=1.0, clock=clock)

    assert await cache.lookup("AKIDa") == _credential("AKIDa")
    clock.now += 0.9
    assert await cache.lookup("AKIDa") == _credential("AKIDa")
    assert source.calls == ["AKIDa"]

    del source.known["AKIDa"]  # disabled or deleted meanwhile
    clock.now += 0.2
    assert await cache.lookup("AKIDa") is None
    assert source.calls == ["AKIDa", "AKIDa"]


async def test_misses_are_cached_too_and_expire() -> None:
    source, clock = CountingSource(), FakeClock()
    cache = CachedCredentialSource(source, ttl=1.0, clock=clock)

    assert await cache.lookup("AKIDnew") is None
    assert await cache.lookup("AKIDnew") is None
    assert source.calls == ["AKIDnew"]

    source.known["AKIDnew"] = _credential("AKIDnew")  # created meanwhile
    clock.now += 1.0
    assert await cache.lookup("AKIDnew") == _credential("AKIDnew")
    assert source.calls == ["AKIDnew", "AKIDnew"]


async def test_size_is_bounded_and_misses_do_not_evict_found_keys() -> None:
    source, clock = CountingSource({"AKIDreal": _credential("AKIDreal")}), FakeClock()
    cache = CachedCredentialSource(source, ttl=60.0, max_entries=3, clock=clock)

    await cache.lookup("AKIDreal")
    for n in range(10):
        await cache.lookup(f"AKIDbogus{n}")
    await cache.lookup("AKIDreal")
    assert source.calls.count("AKIDreal") == 1

    # Only the 3 newest misses are remembered.
    source.calls.clear()
    for n in (9, 8, 7):
        await cache.lookup(f"AKIDbogus{n}")
    assert source.calls == []
    await cache.lookup("AKIDbogus0")
    assert source.calls == ["AKIDbogus0"]


async def test_invalidate_forgets_at_once() -> None:
    source, clock = CountingSource({"AKIDa": _credential("AKIDa")}), FakeClock()
    cache = CachedCredentialSource(source, ttl=60.0, clock=clock)
    await cache.lookup("AKIDa")
    del source.known["AKIDa"]
    cache.invalidate("AKIDa")
    assert await cache.lookup("AKIDa") is None
    source.known["AKIDa"] = _credential("AKIDa")
    cache.invalidate()
    assert await cache.lookup("AKIDa") == _credential("AKIDa")
