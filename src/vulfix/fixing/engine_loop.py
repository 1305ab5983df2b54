"""The engine's own heartbeat: every interval, sweep (expire leases, time out undelivered
jobs, queue expired snapshots for deletion). Each replica runs one; sweeps are idempotent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from vulfix.fixing.clock import Clock
from vulfix.fixing.errors import StorageUnavailable

log = logging.getLogger("vulfix.engine")


class EngineLoop:
    def __init__(
        self,
        sweep: Callable[[datetime], Awaitable[Any]],
        clock: Clock,
        interval: float = 1.0,
        on_sweep: Callable[[Any], Awaitable[None]] | None = None,
    ) -> None:
        self.sweep = sweep
        self.clock = clock
        self.interval = interval
        self.on_sweep = on_sweep
        # Set while the database is away: the outage is logged once, not once a tick.
        self.storage_down = False

    async def run(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        """One sweep; a failure is logged and the next tick tries again (a database outage
        must not kill the loop)."""
        try:
            figures = await self.sweep(self.clock.now())
            if self.on_sweep is not None:
                await self.on_sweep(figures)
        except StorageUnavailable as error:
            if not self.storage_down:
                cause = error.__cause__ or error
                reason = f"{type(cause).__name__}: {cause}".splitlines()[0]
                log.warning("engine sweep: database unavailable (%s); retrying", reason)
            self.storage_down = True
            return
        except Exception:
            log.exception("engine sweep failed")
            return
        if self.storage_down:
            log.info("engine sweep: database available again")
        self.storage_down = False
