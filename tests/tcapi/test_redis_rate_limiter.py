"""`RedisRateLimiter` against a real Redis: the memory limiter's semantics, shared by replicas,
and what it does when Redis is not there."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from tests.services import redis_url
from tests.tcp_proxy import SilentServer, TcpProxy, free_port
from vulfix.redis_connection import open_redis
from vulfix.tcapi.rate_limiting import RatePolicy
from vulfix.tcapi.redis_rate_limiter import FailMode, RedisRateLimiter

LimiterFactory = Callable[..., RedisRateLimiter]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def url() -> str:
    return redis_url()


@pytest.fixture
async def limiter_for(url: str) -> AsyncIterator[LimiterFactory]:
    """Builds limiters ("replicas"), each on its own client, all under one fresh key prefix;
    closes them and deletes their keys afterwards."""
    prefix = f"test-{secrets.token_hex(6)}:"
    made: list[tuple[RedisRateLimiter, Redis]] = []

    def make(
        *, redis: str = url, fail_mode: FailMode = "open", timeout: float = 0.25, **options: float
    ) -> RedisRateLimiter:
        client = open_redis(redis, timeout=timeout)
        limiter = RedisRateLimiter(client, prefix=prefix, fail_mode=fail_mode, **options)
        made.append((limiter, client))
        return limiter

    yield make
    for limiter, client in made:
        await limiter.close()
        await client.aclose()
    cleaner = open_redis(url)
    keys = [key async for key in cleaner.scan_iter(match=prefix + "*")]
    if keys:
        await cleaner.delete(*keys)
    await cleaner.aclose()


async def test_exactly_the_limit_is_accepted_in_one_window_and_the_next_is_refused(
    limiter_for: LimiterFactory,
) -> None:
    limiter = limiter_for()
    verdicts = [await limiter.allow("1:DescribeVulFixStatus", 20) for _ in range(21)]
    assert verdicts == [True] * 20 + [False]
    assert await limiter.allow("1:CreateVulFix", 20), "another action has its own budget"
    assert await limiter.allow("2:DescribeVulFixStatus", 20), "another account too"


async def test_capacity_returns_as_accepted_requests_age_out_of_the_window(
    limiter_for: LimiterFactory,
) -> None:
    limiter = limiter_for()
    started = time.monotonic()
    assert [await limiter.allow("k", 3) for _ in range(2)] == [True, True]
    await asyncio.sleep(0.5)
    assert [await limiter.allow("k", 3) for _ in range(2)] == [True, False]
    await asyncio.sleep(1.1 - (time.monotonic() - started))
    # The first two have left the window, the one from 0.5 s has not.
    assert [await limiter.allow("k", 3) for _ in range(3)] == [True, True, False]


async def test_two_replicas_share_one_budget_exactly(limiter_for: LimiterFactory) -> None:
    replicas = [limiter_for(), limiter_for()]
    verdicts = await asyncio.gather(
        *(replicas[n % 2].allow("7:DescribeVulFixStatus", 20) for n in range(100))
    )
    assert sum(verdicts) == 20


async def test_per_action_overrides_apply_across_replicas(limiter_for: LimiterFactory) -> None:
    policy = RatePolicy(20, {"CreateVulFix": 5})
    replicas = [limiter_for(), limiter_for()]

    async def burst(action: str) -> int:
        limit = policy.limit_for(action)
        calls = (replicas[n % 2].allow(f"3:{action}", limit) for n in range(30))
        return sum(await asyncio.gather(*calls))

    assert await burst("CreateVulFix") == 5
    assert await burst("DescribeVulFixStatus") == 20


async def test_keys_expire_one_window_after_the_last_accepted_request(
    limiter_for: LimiterFactory, url: str
) -> None:
    limiter = limiter_for()
    assert await limiter.allow("9:RetryVulFix", 2)
    inspector = open_redis(url)
    try:
        [key] = [k async for k in inspector.scan_iter(match=f"{limiter._prefix}9:RetryVulFix")]
        assert 0 < await inspector.pttl(key) <= 1000
        await asyncio.sleep(1.1)
        assert await inspector.exists(key) == 0
    finally:
        await inspector.aclose()


async def test_the_script_is_loaded_again_when_redis_has_forgotten_it(
    limiter_for: LimiterFactory, url: str
) -> None:
    limiter = limiter_for()
    assert await limiter.allow("k", 1)
    admin = open_redis(url)
    try:
        await admin.script_flush()  # as a restart would
    finally:
        await admin.aclose()
    errors = metric("vulfix_rate_limiter_redis_errors_total")
    assert await limiter.allow("k", 1) is False, "still decided by Redis"
    assert metric("vulfix_rate_limiter_redis_errors_total") == errors


async def test_an_unreachable_redis_fails_open_at_once_and_is_counted(
    limiter_for: LimiterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = limiter_for(redis=f"redis://127.0.0.1:{free_port()}/0", retry_after=60.0)
    errors = metric("vulfix_rate_limiter_redis_errors_total")
    unchecked = metric("vulfix_rate_limiter_unchecked_total", verdict="accepted")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="vulfix.rate_limit"):
        verdicts = [await limiter.allow("1:DescribeVulFixStatus", 1) for _ in range(50)]
    assert verdicts == [True] * 50, "over the limit, yet accepted: nothing can count them"
    assert time.monotonic() - started < 0.5
    # One failed call, then Redis is left alone for `retry_after`.
    assert metric("vulfix_rate_limiter_redis_errors_total") == errors + 1
    assert metric("vulfix_rate_limiter_unchecked_total", verdict="accepted") == unchecked + 50
    assert len(caplog.records) == 1 and "Redis unavailable" in caplog.text


async def test_warnings_are_logged_at_most_once_per_interval(
    limiter_for: LimiterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = limiter_for(redis=f"redis://127.0.0.1:{free_port()}/0", retry_after=0.0)
    errors = metric("vulfix_rate_limiter_redis_errors_total")
    with caplog.at_level(logging.WARNING, logger="vulfix.rate_limit"):
        for _ in range(5):
            assert await limiter.allow("k", 1)
    assert metric("vulfix_rate_limiter_redis_errors_total") == errors + 5, "each one tried Redis"
    assert len(caplog.records) == 1


async def test_fail_closed_refuses_while_redis_is_unreachable(
    limiter_for: LimiterFactory,
) -> None:
    limiter = limiter_for(redis=f"redis://127.0.0.1:{free_port()}/0", fail_mode="closed")
    unchecked = metric("vulfix_rate_limiter_unchecked_total", verdict="refused")
    assert [await limiter.allow("k", 20) for _ in range(3)] == [False] * 3
    assert metric("vulfix_rate_limiter_unchecked_total", verdict="refused") == unchecked + 3


async def test_a_redis_that_hangs_costs_one_timeout_then_nothing_while_probed(
    limiter_for: LimiterFactory,
) -> None:
    async with SilentServer() as silent:
        limiter = limiter_for(redis=f"redis://127.0.0.1:{silent.port}/0", timeout=0.1)
        limiter._retry_after = 0.0  # probe again at once: shows the probe does not hold others
        started = time.monotonic()
        assert await limiter.allow("k", 1)
        assert time.monotonic() - started < 0.5, "bounded by the socket timeout"

        probe = asyncio.create_task(limiter.allow("k", 1))
        await asyncio.sleep(0.01)
        started = time.monotonic()
        assert await limiter.allow("k", 1), "answered by the fail mode during the probe"
        assert time.monotonic() - started < 0.01
        assert await probe


async def test_the_limiter_uses_redis_again_once_it_answers(
    limiter_for: LimiterFactory, url: str
) -> None:
    upstream = urlsplit(url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379)
    limiter = limiter_for(redis=f"redis://127.0.0.1:{proxy.port}/0", retry_after=0.2)
    assert [await limiter.allow("k", 1) for _ in range(3)] == [True] * 3, "down: fail open"
    await proxy.start()
    try:
        await asyncio.sleep(0.25)
        assert await limiter.allow("k", 1), "the probe, decided by Redis"
        assert not await limiter.allow("k", 1), "over the limit again"
        await proxy.stop()  # and away again: its pooled connection is dead now
        assert await limiter.allow("k", 1), "fail open"
    finally:
        await proxy.stop()
