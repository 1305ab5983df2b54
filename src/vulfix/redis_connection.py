"""The Redis client the replicas share: short timeouts, no hidden retries.

A rate-limit check sits on every API request, so a Redis that is down or unreachable must
cost little: connecting and reading give up after `TIMEOUT_SECONDS`, and redis-py's own
retries (three, with backoff, by default) are off. The rate limiter and the job notifier decide
for themselves what a failure means and when to try again.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

# Loopback and LAN round trips are well under a millisecond; a Redis slower than this is
# treated as unavailable rather than allowed to stall the requests waiting on it.
TIMEOUT_SECONDS = 0.25


def open_redis(url: str, *, client_name: str = "vulfix", timeout: float = TIMEOUT_SECONDS) -> Redis:
    """A client for `url` (`redis://[:password@]host:port/db`, or `rediss://` for TLS).

    Connections open lazily, so this never fails for an unreachable server. `client_name`
    labels the connections in `CLIENT LIST`.
    """
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
        client_name=client_name,
    )
    return client
