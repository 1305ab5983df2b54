"""Engine figures on /metrics: jobs by kind, state and outcome (from the database, so every
replica shows the same), lease expiries and dispatch timeouts seen by this process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Protocol

from prometheus_client import Counter, Gauge

from vulfix.fixing.clock import Clock

JOBS = Gauge(
    "vulfix_engine_jobs",
    "Jobs in the queue by kind, state and outcome",
    ["kind", "state", "outcome"],
)
LEASE_EXPIRIES = Counter(
    "vulfix_engine_lease_expiries_total", "Leases that ran out (agent lost contact)"
)
DISPATCH_TIMEOUTS = Counter(
    "vulfix_engine_dispatch_timeouts_total", "Jobs no agent picked up in time"
)
QUEUE_DEPTH = Gauge("vulfix_engine_queue_depth", "Jobs queued or leased, not yet finished")

JobCounts = Iterable[tuple[str, str, str, int]]


class SweepCounts(Protocol):
    leases_expired: int
    dispatch_timeouts: int


class EngineFigures:
    """Refreshes the job gauges at most every `every` seconds (`store.job_tally`)."""

    def __init__(
        self,
        count_jobs: Callable[[datetime], Awaitable[JobCounts]],
        clock: Clock,
        every: float = 5.0,
    ) -> None:
        self.count_jobs = count_jobs
        self.clock = clock
        self.every = every
        self._last = 0.0

    async def __call__(self, figures: SweepCounts) -> None:
        LEASE_EXPIRIES.inc(figures.leases_expired)
        DISPATCH_TIMEOUTS.inc(figures.dispatch_timeouts)
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        depth = 0
        JOBS.clear()
        for kind, state, outcome, count in await self.count_jobs(self.clock.now()):
            JOBS.labels(kind, state, outcome).set(count)
            if state in ("queued", "leased"):
                depth += count
        QUEUE_DEPTH.set(depth)
