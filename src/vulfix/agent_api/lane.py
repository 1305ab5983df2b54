"""The agents' lane to the database: at most so many agent requests use it at once.

A fleet outnumbers the database connections a replica holds. Left to queue for them, a burst
of agent reports (every host of a task finishing its snapshot together) fills the pool's queue,
and an operator's DescribeVulFixStatus waits behind all of them, past the pool's timeout, for
InternalError.MainDBFail. Agents queue here instead, short of the pool's capacity, so that the
API, the console and the engine keep connections of their own. A busy agent API is a 503 with
Retry-After, which agents already answer by resending later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# Connections left to everything but the agents: API calls (at most the rate limit's few a
# second per account), console pages and the engine's sweeps.
CONTROL_RESERVE = 5
# Agent transactions at once where the pool is too small to reserve anything (SQLite's
# single connection): one committing while the next gathers, so an API call waits behind
# one at most.
MINIMUM_SLOTS = 2
# How long an agent request may wait for its turn: under the agents' 10 s request timeout.
DEFAULT_WAIT = 5.0


class LaneBusy(Exception):
    """The agent lane stayed full for the whole wait."""


def agent_slots(connections: int, per_transaction: int = 1) -> int:
    """The agent lane's width for a pool of `connections`, when the store commits up to
    `per_transaction` agent operations together (`store.group_commit`)."""
    return max(MINIMUM_SLOTS, connections - CONTROL_RESERVE) * per_transaction


class AgentLane:
    def __init__(self, slots: int, wait: float = DEFAULT_WAIT) -> None:
        if slots < 1:
            raise ValueError(f"the agent lane needs at least one slot, not {slots}")
        self.slots = slots
        self.wait = wait
        self._free = asyncio.Semaphore(slots)

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """Holds one slot for the block; `LaneBusy` if none came free within `wait`."""
        if self._free.locked():  # a timer costs: only a full lane pays for it
            try:
                # Not wait_for: on Python 3.11 it runs the wait in a task of its own, which
                # cost a big fleet more than its requests' database work.
                async with asyncio.timeout(self.wait):
                    await self._free.acquire()
            except TimeoutError as exc:
                raise LaneBusy(f"{self.slots} agent requests already use the database") from exc
        else:
            await self._free.acquire()
        try:
            yield
        finally:
            self._free.release()
