"""Time as the simulated fleet sees it: real seconds, or virtual ones that tests control.

With `VirtualTimeline` a fleet runs hours of simulated work in milliseconds and the same way
every time: time stands still while any enlisted task is busy, and jumps to the next wake-up
once every one of them is asleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol


class Timeline(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def enlist(self, task: asyncio.Task[Any]) -> None:
        """Counts `task` among those whose sleeping lets time pass (virtual time only)."""
        ...


class RealTimeline:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def enlist(self, task: asyncio.Task[Any]) -> None:
        """Real time passes anyway."""


class VirtualTimeline:
    """Virtual seconds that pass only when every enlisted task sleeps on this timeline.

    Only enlisted tasks may sleep on it. A task blocked on anything else (a database thread,
    a socket) holds time still until it gets to its next sleep, so nothing is skipped.
    `on_advance(seconds)` runs on every jump: pass a `ManualClock.advance` to keep the
    server's clock in step.
    """

    def __init__(self, on_advance: Callable[[float], object] | None = None) -> None:
        self._now = 0.0
        self._on_advance = on_advance
        self._order = itertools.count()
        self._wakeups: list[tuple[float, int, asyncio.Future[None]]] = []
        self._enlisted = 0
        self._asleep = 0

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        wakeup: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._wakeups, (self._now + max(0.0, seconds), next(self._order), wakeup))
        self._asleep += 1
        self._advance_if_all_asleep()
        try:
            await wakeup
        except asyncio.CancelledError:
            # Woken sleepers were already counted out by `_advance_if_all_asleep`.
            if wakeup.cancelled():
                self._asleep -= 1
                self._advance_if_all_asleep()
            raise

    def enlist(self, task: asyncio.Task[Any]) -> None:
        self._enlisted += 1
        task.add_done_callback(self._discharge)

    def _discharge(self, _task: asyncio.Task[Any]) -> None:
        self._enlisted -= 1
        self._advance_if_all_asleep()

    def _advance_if_all_asleep(self) -> None:
        if self._asleep == 0 or self._asleep < self._enlisted:
            return
        while self._wakeups and self._wakeups[0][2].done():
            heapq.heappop(self._wakeups)
        if not self._wakeups:
            return
        target = self._wakeups[0][0]
        if target > self._now:
            if self._on_advance is not None:
                self._on_advance(target - self._now)
            self._now = target
        while self._wakeups and self._wakeups[0][0] <= self._now:
            _at, _order, wakeup = heapq.heappop(self._wakeups)
            if not wakeup.done():
                wakeup.set_result(None)
                self._asleep -= 1
