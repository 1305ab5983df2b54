"""Requests-per-second limits shared by every replica, kept in Redis.

Algorithm: the same sliding one-second log as `MemoryRateLimiter`, as one sorted set per
(account, action) holding the accepted requests scored by their time. A request is accepted
when fewer than `limit` members remain after dropping those one second old or more, so at most
`limit` are accepted in any one-second window, over all replicas together. GCRA would keep a
single number per key, but it spaces requests evenly (a burst of `limit`, then one every
1/`limit` s): it accepts more than `limit` in some one-second windows and refuses bursts the
memory limiter accepts, so the two backends would disagree. With limits around 20 the log's
size (at most `limit` members per key) does not matter.

Atomic, and the replicas' clocks do not matter: one Lua script trims, counts and adds, reading
the time from the Redis server (`TIME`), so two replicas can never both take the last slot.
Each key expires one window after its newest member: idle keys vanish. The script assumes one
Redis server (or a Sentinel-managed primary), Redis >= 5; it is not Redis Cluster-safe, as a
batch touches keys of any slot.

Cheap on the hot path: checks that arrive in the same event-loop turn, or while the previous
batch is on the wire, go out together as one EVALSHA over one connection: never more than one
round trip per request, and far less client CPU per request than one command each (see
`bench/rate_limiter.py`). The script is loaded on the first NOSCRIPT answer, which also covers
a Redis restart that emptied the script cache.

When Redis is unreachable, slow or answering errors, the fail mode decides: "open" accepts
(an outage of Redis must not become an outage of the API), "closed" refuses, which the wire
layer answers as `RequestLimitExceeded`, a code clients already back off and retry on. After a
failure Redis is left alone for `retry_after` seconds (otherwise every request would wait on a
connect timeout), then the next request probes it while the others keep the fail mode.
Failed calls are counted in `vulfix_rate_limiter_redis_errors_total`, requests decided without
Redis in `vulfix_rate_limiter_unchecked_total`, and a warning is logged at most once per
`warn_every` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from vulfix.tcapi.rate_limiting import WINDOW_SECONDS

FailMode = Literal["open", "closed"]

# KEYS: one sorted set per (account, action). ARGV[i]: the limit of KEYS[i].
# Returns one 1 (accepted) or 0 (refused) per key, deciding repeated keys in order.
SCRIPT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local window = WINDOW_MICROSECONDS
local horizon = now - window
local ttl = math.ceil(window / 1000)
-- A member must be unique within its set: the microsecond, then how many members the set held,
-- which grows with every request accepted within one microsecond.
local stamp = now_parts[1] .. '.' .. now_parts[2] .. '#'
local verdicts = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', horizon)
  local count = redis.call('ZCARD', key)
  if count < tonumber(ARGV[i]) then
    redis.call('ZADD', key, now, stamp .. count)
    redis.call('PEXPIRE', key, ttl)
    verdicts[i] = 1
  else
    verdicts[i] = 0
  end
end
return verdicts
""".replace("WINDOW_MICROSECONDS", str(round(WINDOW_SECONDS * 1_000_000)))
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()

# Bounds how long one script call holds the (single-threaded) Redis server.
MAX_BATCH = 256

REDIS_ERRORS = Counter(
    "vulfix_rate_limiter_redis_errors",
    "Rate-limit calls to Redis that failed (one per batch of requests)",
)
UNCHECKED = Counter(
    "vulfix_rate_limiter_unchecked",
    "Requests decided by the fail mode because Redis was unavailable, by verdict",
    ["verdict"],
)

log = logging.getLogger("vulfix.rate_limit")

_Pending = tuple[str, int, "asyncio.Future[bool]"]


class RedisRateLimiter:
    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "vulfix:",
        fail_mode: FailMode = "open",
        retry_after: float = 1.0,
        warn_every: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix + "rate:"
        self._fail_verdict = fail_mode == "open"
        self._unchecked = UNCHECKED.labels("accepted" if self._fail_verdict else "refused")
        self._retry_after = retry_after
        self._warn_every = warn_every
        self._monotonic = monotonic
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        # None while Redis answers; after a failure, when to try it again.
        self._retry_at: float | None = None
        self._warned_at = -math.inf
        self._unwarned_failures = 0

    async def allow(self, key: str, limit: int) -> bool:
        if self._retry_at is not None and (
            self._flusher is not None or self._monotonic() < self._retry_at
        ):
            self._unchecked.inc()
            return self._fail_verdict
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((self._prefix + key, limit, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="vulfix-rate-limiter")
        return await future

    async def close(self) -> None:
        """Waits for the checks on the wire (bounded by the client's timeouts)."""
        if self._flusher is not None:
            await self._flusher

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                try:
                    verdicts = await self._check(batch)
                except Exception as error:  # whatever went wrong, Redis cannot decide now
                    self._failed(error)
                    self._decide_without_redis(batch)
                    return
                except asyncio.CancelledError:
                    self._decide_without_redis(batch)
                    raise
                self._recovered()
                for (_, _, future), verdict in zip(batch, verdicts, strict=True):
                    if not future.done():
                        future.set_result(verdict)
        finally:
            self._flusher = None

    async def _check(self, batch: list[_Pending]) -> list[bool]:
        keys_and_limits = [key for key, _, _ in batch] + [limit for _, limit, _ in batch]
        try:
            verdicts = await self._client.evalsha(SCRIPT_SHA, len(batch), *keys_and_limits)
        except NoScriptError:
            await self._client.script_load(SCRIPT)
            verdicts = await self._client.evalsha(SCRIPT_SHA, len(batch), *keys_and_limits)
        if not isinstance(verdicts, list) or len(verdicts) != len(batch):
            raise TypeError(f"unexpected answer from the rate-limit script: {verdicts!r}")
        return [verdict == 1 for verdict in verdicts]

    def _decide_without_redis(self, batch: list[_Pending]) -> None:
        """The fail mode for `batch` and for everything queued behind it."""
        batch += self._queue
        self._queue.clear()
        for _, _, future in batch:
            if not future.done():
                self._unchecked.inc()
                future.set_result(self._fail_verdict)

    def _failed(self, error: Exception) -> None:
        REDIS_ERRORS.inc()
        now = self._monotonic()
        self._retry_at = now + self._retry_after
        self._unwarned_failures += 1
        if now - self._warned_at >= self._warn_every:
            log.warning(
                "rate limiter: Redis unavailable (%s: %s; %d failure(s) since the last warning); "
                "requests are %s without a check until it answers",
                type(error).__name__,
                error,
                self._unwarned_failures,
                "accepted" if self._fail_verdict else "refused",
            )
            self._warned_at = now
            self._unwarned_failures = 0

    def _recovered(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            log.info("rate limiter: Redis answers again; limits are shared across replicas")
