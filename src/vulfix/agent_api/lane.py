"""The agents' lane to the database: at most so many agent requests use it at once.

A fleet outnumbers the database connections a replica holds. Left to queue for them, a burst
of agent reports (every host of a task finishing its snapshot together) fills the pool's queue,
and an operator's DescribeVulFixStatus waits behind all of them, past the pool's timeout, for
InternalError.MainDBFail. Agents queue here instead, short of the pool's capacity, so that the
API, the console and the engine keep connections of their own. A busy agent API is a 503 with
Retry-After, which agents already answer by resending later.

Waiters queue in arrival order, and all of them wait equally long, so the oldest waiter's
deadline is always the next to fall due: one timer serves the whole queue. A timer per wait
(`asyncio.timeout`) cost a fleet of 10 000 hosts a tenth of the server's CPU, spent pushing
and cancelling timers in the event loop's heap.
"""

from __future__ import annotations

import asyncio
from collections import deque

# Connections left to everything but the agents' requests: API calls (at most the rate limit's
# few a second per account), console pages, the engine's sweeps, and the host registry's
# token reads (one at a time, however many requests wait for them: `store.batched_lookup`).
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
        self._used = 0
        # (deadline, future) in arrival order: a waiter's future resolves when a leaving
        # holder hands it its slot, or fails with LaneBusy when its deadline passes.
        self._waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._admission = _Admission(self)

    def admitted(self) -> _Admission:
        """`async with lane.admitted():` holds one slot for the block; `LaneBusy` if none came
        free within `wait`."""
        return self._admission

    async def _enter(self) -> None:
        if self._used < self.slots and not self._waiters:
            self._used += 1
        else:
            await self._queue()

    async def _queue(self) -> None:
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self._waiters.append((loop.time() + self.wait, turn))
        if self._timer is None:
            self._timer = loop.call_at(self._waiters[0][0], self._expire)
        try:
            await turn
        except asyncio.CancelledError:
            # Cancelled just as a leaving holder handed this waiter its slot: pass it on.
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._release()
            raise

    def _release(self) -> None:
        """A holder leaves: its slot goes to the oldest waiter still waiting, if any."""
        while self._waiters:
            _deadline, turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._used -= 1

    def _expire(self) -> None:
        """The oldest waiters' deadlines passed: they are refused, and the timer moves on to
        the next deadline."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._waiters and (self._waiters[0][0] <= now or self._waiters[0][1].done()):
            _deadline, turn = self._waiters.popleft()
            if not turn.done():
                turn.set_exception(
                    LaneBusy(f"{self.slots} agent requests already use the database")
                )
        if self._waiters:
            self._timer = loop.call_at(self._waiters[0][0], self._expire)


class _Admission:
    """The lane's context manager: one object serves every block, since the lane holds the
    state (an admission to a free lane costs 0.43 us through it, 1.56 us through a
    generator-based one)."""

    __slots__ = ("_lane",)

    def __init__(self, lane: AgentLane) -> None:
        self._lane = lane

    async def __aenter__(self) -> None:
        await self._lane._enter()

    async def __aexit__(self, *_exc: object) -> None:
        self._lane._release()
