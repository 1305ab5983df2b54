"""`RedisJobNotifier` against a real Redis: two notifiers play two replicas on one channel."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from prometheus_client import REGISTRY

from tests.services import redis_url
from tests.tcp_proxy import TcpProxy, free_port
from vulfix.agent_api.redis_notifier import RedisJobNotifier, WakeUp
from vulfix.fixing.agent_port import JobAssignment, SnapshotWork
from vulfix.redis_connection import open_redis

ReplicaFactory = Callable[..., Awaitable[RedisJobNotifier]]


def publish_errors() -> float:
    return (
        REGISTRY.get_sample_value(
            "vulfix_job_notifier_redis_errors_total", {"operation": "publish"}
        )
        or 0.0
    )


@pytest.fixture
def url() -> str:
    return redis_url()


@pytest.fixture
def channel() -> str:
    return f"test-{secrets.token_hex(6)}:jobs"


@pytest.fixture
async def replica(url: str, channel: str) -> AsyncIterator[ReplicaFactory]:
    """Starts notifiers ("replicas") on `channel`, each with its own client, named so a test can
    find its connections; stops them afterwards."""
    async with AsyncExitStack() as stack:

        async def make(
            *, redis: str = url, name: str = "test", subscribed: bool = True, **options: Any
        ) -> RedisJobNotifier:
            client = open_redis(redis, client_name=name)
            stack.push_async_callback(client.aclose)
            notifier = RedisJobNotifier(client, channel=channel, **options)
            notifier.start()
            stack.push_async_callback(notifier.stop)
            if subscribed:
                await asyncio.wait_for(notifier.subscribed.wait(), 5)
            return notifier

        yield make


async def test_a_poll_on_one_replica_is_woken_by_a_job_queued_on_another(
    replica: ReplicaFactory,
) -> None:
    a, b = await replica(), await replica()
    poll = asyncio.create_task(b.wait(7, 10))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    a.notify([7])
    assert await asyncio.wait_for(poll, 1.0) is True
    assert time.monotonic() - started < 1.0
    assert b.local.waiting_hosts == 0


async def test_a_job_is_handed_over_to_this_replicas_polls_only(
    replica: ReplicaFactory,
) -> None:
    a, b = await replica(), await replica()
    here = asyncio.create_task(a.wait(7, 10))
    there = asyncio.create_task(b.wait(8, 0.3))
    await asyncio.sleep(0.01)
    assert a.waiting([7, 8]) == {7}, "b's poll is not a's to answer"

    job = JobAssignment(41, 3, 900.0, SnapshotWork("before-fix", 1))
    a.hand_over({7: job, 8: job})

    assert await asyncio.wait_for(here, 1.0) == job
    # Host 8's job is leased in the store: its poll on b finds it when it next asks.
    assert await asyncio.wait_for(there, 1.0) is False


async def test_a_batch_of_hosts_is_one_message(
    replica: ReplicaFactory, url: str, channel: str
) -> None:
    a, b = await replica(), await replica()
    listener = open_redis(url)
    pubsub = listener.pubsub()
    await pubsub.subscribe(channel)
    assert (await pubsub.get_message(timeout=1))["type"] == "subscribe"
    polls = [asyncio.create_task(b.wait(host, 10)) for host in (1, 5_000, 10_000)]
    await asyncio.sleep(0.01)

    a.notify(list(range(1, 10_001)))  # one task for 10 000 hosts
    a.notify([10_001, 10_002])  # and another in the same instant
    assert await asyncio.wait_for(asyncio.gather(*polls), 1.0) == [True, True, True]

    messages = []
    while (message := await pubsub.get_message(timeout=0.2)) is not None:
        messages.append(msgspec.json.decode(message["data"], type=WakeUp))
    await pubsub.aclose()
    await listener.aclose()
    assert len(messages) == 1
    assert messages[0].hosts == list(range(1, 10_003))


async def test_a_notification_for_a_host_nobody_waits_on_is_harmless(
    replica: ReplicaFactory,
) -> None:
    a, b = await replica(), await replica()
    a.notify([424_242])
    await asyncio.sleep(0.1)
    assert b.local.waiting_hosts == 0
    assert b.local.remembered_hosts <= 1, "remembered briefly, in case its poll is starting"
    poll = asyncio.create_task(b.wait(8, 10))
    await asyncio.sleep(0.01)
    a.notify([8])
    assert await asyncio.wait_for(poll, 1.0) is True, "the subscriber carries on"


async def test_a_replica_does_not_wake_itself_twice(replica: ReplicaFactory) -> None:
    a, _b = await replica(), await replica()
    poll = asyncio.create_task(a.wait(3, 10))
    await asyncio.sleep(0.01)
    a.notify([3])
    assert await asyncio.wait_for(poll, 0.1) is True, "woken in-process, not through Redis"
    await asyncio.sleep(0.2)
    assert a.local.remembered_hosts == 0, "its own message came back and was skipped"


async def test_the_subscriber_resubscribes_after_its_connection_is_killed(
    replica: ReplicaFactory, url: str
) -> None:
    name = f"test-{secrets.token_hex(6)}"
    a, b = await replica(), await replica(name=name)
    admin = open_redis(url)
    try:
        [connection] = [c for c in await admin.client_list(_type="pubsub") if c["name"] == name]
        await admin.client_kill_filter(_id=connection["id"])
    finally:
        await admin.aclose()
    await _eventually(lambda: not b.subscribed.is_set(), "the loss noticed")
    await asyncio.wait_for(b.subscribed.wait(), 2.0)
    poll = asyncio.create_task(b.wait(11, 10))
    await asyncio.sleep(0.01)
    a.notify([11])
    assert await asyncio.wait_for(poll, 1.0) is True


async def test_a_silent_subscription_is_replaced(replica: ReplicaFactory, url: str) -> None:
    upstream = urlsplit(url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379)
    await proxy.start()
    try:
        a = await replica()
        b = await replica(redis=f"redis://127.0.0.1:{proxy.port}/0", keepalive=0.1)
        proxy.freeze()  # the link stays up but carries nothing, as behind a dead NAT entry
        await _eventually(lambda: not b.subscribed.is_set(), "the silence noticed", 2.0)
        await asyncio.wait_for(b.subscribed.wait(), 2.0)
        poll = asyncio.create_task(b.wait(12, 10))
        await asyncio.sleep(0.01)
        a.notify([12])
        assert await asyncio.wait_for(poll, 1.0) is True
    finally:
        await proxy.stop()


async def test_the_subscriber_waits_for_redis_to_return(replica: ReplicaFactory, url: str) -> None:
    upstream = urlsplit(url)
    proxy = TcpProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379)
    b = await replica(redis=f"redis://127.0.0.1:{proxy.port}/0", subscribed=False, max_backoff=0.2)
    await asyncio.sleep(0.5)  # a few failed attempts, backing off
    assert not b.subscribed.is_set()
    await proxy.start()
    try:
        await asyncio.wait_for(b.subscribed.wait(), 2.0)
        a = await replica()
        poll = asyncio.create_task(b.wait(13, 10))
        await asyncio.sleep(0.01)
        a.notify([13])
        assert await asyncio.wait_for(poll, 1.0) is True
    finally:
        await proxy.stop()


async def test_publishing_without_redis_wakes_local_polls_and_counts_the_loss(
    replica: ReplicaFactory,
) -> None:
    a = await replica(redis=f"redis://127.0.0.1:{free_port()}/0", subscribed=False)
    errors = publish_errors()
    poll = asyncio.create_task(a.wait(21, 10))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    a.notify([21, 22])
    assert time.monotonic() - started < 0.01, "notify never waits on Redis"
    assert await asyncio.wait_for(poll, 0.1) is True
    await _eventually(lambda: publish_errors() == errors + 1, "the dropped batch counted")


async def _eventually(condition: Callable[[], bool], what: str, within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.01)
