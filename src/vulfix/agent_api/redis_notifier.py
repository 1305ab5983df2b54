"""Wake-ups for long-polling agents across replicas, over Redis pub/sub.

Each replica keeps a `MemoryJobNotifier` for the polls it holds. `notify` wakes those at once
and queues the host ids for the other replicas; a background publisher sends everything queued
as one message (a task for 10 000 hosts, or several notifications in the same instant, is one
PUBLISH), tagged with this notifier's origin so that its own subscriber skips it. One
subscriber task per process listens on the channel and hands the ids to the local notifier,
which remembers a wake-up for a host nobody waits on yet, exactly as in one process.

Delivery is best-effort, and that is safe: the job itself is in the database, not in the
message, so a lost wake-up only makes the poll wait out its timeout (`poll_wait`, 25 s by
default) and the agent poll again, finding the job then. Hence, while Redis is unreachable:
a batch that cannot be published is dropped (counted in
`vulfix_job_notifier_redis_errors_total`, logged at most once per `warn_every` s); the
subscriber reconnects with jittered exponential backoff (0.1 s doubling to `max_backoff`) and
resubscribes, and what was published meanwhile is lost. A subscription that falls silent is
probed with a PING every `keepalive` s and replaced when the PING goes unanswered, so a
half-open connection cannot keep a replica deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from vulfix.agent_api.notifier import MemoryJobNotifier
from vulfix.fixing.agent_port import JobAssignment

INITIAL_BACKOFF = 0.1

REDIS_ERRORS = Counter(
    "vulfix_job_notifier_redis_errors",
    "Failed Redis operations of the agent wake-up notifier, by operation",
    ["operation"],
)

log = logging.getLogger("vulfix.agent_api")


class WakeUp(msgspec.Struct, array_like=True):
    """One message: the hosts that got work, and which notifier sent it."""

    origin: str
    hosts: list[int]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WakeUp)


class RedisJobNotifier:
    def __init__(
        self,
        client: Redis,
        *,
        channel: str = "vulfix:jobs",
        local: MemoryJobNotifier | None = None,
        keepalive: float = 5.0,
        max_backoff: float = 5.0,
        warn_every: float = 30.0,
    ) -> None:
        self.local = local or MemoryJobNotifier()
        self.channel = channel
        self._client = client
        self._keepalive = keepalive
        self._max_backoff = max_backoff
        self._warn_every = warn_every
        self._origin = secrets.token_hex(8)
        self._outbox: set[int] = set()
        self._publisher: asyncio.Task[None] | None = None
        self._subscriber: asyncio.Task[None] | None = None
        self._warned_at: dict[str, float] = {}
        # Set while the subscription is live: tests and health checks can wait for it.
        self.subscribed = asyncio.Event()

    def notify(self, host_ids: list[int]) -> None:
        """Wakes this process's polls now and queues the rest; never waits on Redis."""
        self.local.notify(host_ids)
        if not host_ids:
            return
        self._outbox.update(host_ids)
        if self._publisher is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop to publish from: the ids go out with the next notification
            self._publisher = loop.create_task(self._publish(), name="vulfix-notify-publish")

    def waiting(self, host_ids: Iterable[int]) -> set[int]:
        return self.local.waiting(host_ids)

    def hand_over(self, jobs: Mapping[int, JobAssignment]) -> None:
        """To this process's polls only: a host whose poll has gone finds its leased job with
        its next poll, on whichever replica that reaches, so other replicas need no word."""
        self.local.hand_over(jobs)

    async def wait(self, host_id: int, timeout: float) -> JobAssignment | bool:  # noqa: ASYNC109
        return await self.local.wait(host_id, timeout)

    def release_all(self) -> None:
        self.local.release_all()

    def start(self) -> None:
        """Starts the subscriber (call once, on the running loop)."""
        if self._subscriber is None:
            self._subscriber = asyncio.create_task(
                self._subscribe_forever(), name="vulfix-notify-subscribe"
            )

    async def stop(self) -> None:
        """Stops listening and sends what is still queued (bounded by the client's timeouts)."""
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscriber
            self._subscriber = None
        if self._publisher is not None:
            await self._publisher

    async def _publish(self) -> None:
        try:
            while self._outbox:
                hosts, self._outbox = sorted(self._outbox), set()
                try:
                    await self._client.publish(
                        self.channel, _encoder.encode(WakeUp(self._origin, hosts))
                    )
                except Exception as error:  # dropped: the polls time out and poll again
                    self._failed("publish", error, f"{len(hosts)} host wake-up(s) dropped")
        finally:
            self._publisher = None

    async def _subscribe_forever(self) -> None:
        backoff = INITIAL_BACKOFF
        while True:
            try:
                await self._listen()
            except Exception as error:
                self._failed("subscribe", error, "reconnecting; polls fall back to timeouts")
            if self.subscribed.is_set():
                self.subscribed.clear()
                backoff = INITIAL_BACKOFF
            # Jitter: replicas that lost Redis together should not all return in one instant.
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, self._max_backoff)

    async def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            awaiting_pong = False
            while True:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=self._keepalive)
                if message is None:
                    if awaiting_pong:
                        raise RedisConnectionError("the subscription did not answer a PING")
                    await pubsub.ping()
                    awaiting_pong = True
                    continue
                awaiting_pong = False
                if message["type"] == "message":
                    self._deliver(message["data"])
                elif message["type"] == "subscribe":
                    self.subscribed.set()
                    self._warned_at.pop("subscribe", None)
                    log.info("job notifier: subscribed to Redis channel %s", self.channel)
        finally:
            await pubsub.aclose()

    def _deliver(self, data: bytes) -> None:
        try:
            wake_up = _decoder.decode(data)
        except msgspec.DecodeError as error:
            self._failed("decode", error, "message ignored")
            return
        if wake_up.origin != self._origin:
            self.local.notify(wake_up.hosts)

    def _failed(self, operation: str, error: Exception, consequence: str) -> None:
        REDIS_ERRORS.labels(operation).inc()
        now = time.monotonic()
        if now - self._warned_at.get(operation, -math.inf) >= self._warn_every:
            self._warned_at[operation] = now
            log.warning(
                "job notifier: %s failed (%s: %s); %s",
                operation,
                type(error).__name__,
                error,
                consequence,
            )
