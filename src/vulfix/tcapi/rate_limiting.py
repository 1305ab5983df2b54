"""Requests-per-second limits per (account, action).

A sliding one-second log: at most `limit` requests are accepted in any window of one second,
the next is refused, and capacity returns as the oldest accepted requests age out. The backend
is a small interface so several replicas can share one (Redis) later.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

WINDOW_SECONDS = 1.0


class RateLimiter(Protocol):
    async def allow(self, key: str, limit: int) -> bool: ...


class MemoryRateLimiter:
    """In-process sliding-window log; exact within one process."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._log: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    async def allow(self, key: str, limit: int) -> bool:
        return self.allow_now(key, limit)

    def allow_now(self, key: str, limit: int) -> bool:
        now = self._clock()
        log = self._log.get(key)
        if log is None:
            if len(self._log) >= self._max_keys:
                self._forget_idle(now)
            log = self._log[key] = deque()
        horizon = now - WINDOW_SECONDS
        while log and log[0] <= horizon:
            log.popleft()
        if len(log) >= limit:
            return False
        log.append(now)
        return True

    def _forget_idle(self, now: float) -> None:
        horizon = now - WINDOW_SECONDS
        for key in [k for k, log in self._log.items() if not log or log[-1] <= horizon]:
            del self._log[key]


class RatePolicy:
    """The limit for each action: a per-action override, else the default; 0 means unlimited."""

    def __init__(self, default: int, per_action: dict[str, int] | None = None) -> None:
        self.default = default
        self.per_action = dict(per_action or {})

    def limit_for(self, action: str) -> int:
        return self.per_action.get(action, self.default)
