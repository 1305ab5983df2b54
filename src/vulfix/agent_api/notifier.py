"""In-process wake-ups for long-polling agents: the `JobNotifier` of a single server process.

A poll asks for a job and, finding none, waits. A job queued between the two would be missed
until the wait times out, so a notification for a host nobody is waiting on is remembered
briefly (`remember_seconds`): the wait that follows returns at once. At worst that wakes a
poll that then finds nothing and answers 204 early; the agent simply polls again.

A job leased for a host while its poll waits here can be handed to that poll (`hand_over`):
when a task starts, a fleet's held polls answer with their first job at once, instead of
each asking the store for it.

Not thread-safe: call `notify` on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

from vulfix.fixing.agent_port import JobAssignment

# A held poll: answered with its job, True when woken to ask, False when its wait ran out.
Held = asyncio.Future[JobAssignment | bool]


class MemoryJobNotifier:
    def __init__(
        self,
        *,
        remember_seconds: float = 2.0,
        max_remembered: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._remember_seconds = remember_seconds
        self._max_remembered = max_remembered
        self._monotonic = monotonic
        # host id -> its held polls, woken together with the same answer. Only hosts someone
        # is waiting on: an entry goes when it is woken or its last poll leaves, so memory
        # follows the open polls.
        self._waiting: dict[int, list[Held]] = {}
        # host id -> when a notification arrived with no waiter; oldest first.
        self._unclaimed: dict[int, float] = {}
        self._released = False

    def notify(self, host_ids: list[int]) -> None:
        now = self._monotonic()
        self._forget_unclaimed_before(now - self._remember_seconds)
        for host_id in host_ids:
            waiters = self._waiting.pop(host_id, None)
            if waiters is not None:
                _wake(waiters, True)
                continue
            self._unclaimed.pop(host_id, None)  # re-insert at the young end
            self._unclaimed[host_id] = now
            if len(self._unclaimed) > self._max_remembered:
                del self._unclaimed[next(iter(self._unclaimed))]

    def waiting(self, host_ids: Iterable[int]) -> set[int]:
        return {host_id for host_id in host_ids if host_id in self._waiting}

    def hand_over(self, jobs: Mapping[int, JobAssignment]) -> None:
        gone = []
        for host_id, job in jobs.items():
            waiters = self._waiting.pop(host_id, None)
            if waiters is None:
                gone.append(host_id)
            else:
                _wake(waiters, job)
        if gone:
            self.notify(gone)

    async def wait(self, host_id: int, timeout: float) -> JobAssignment | bool:  # noqa: ASYNC109
        """The job handed over to the host's poll; True when woken by a notification for the
        host; False when `timeout` ran out (or the notifier was released)."""
        if self._released:
            return False
        noted = self._unclaimed.pop(host_id, None)
        if noted is not None and noted >= self._monotonic() - self._remember_seconds:
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        woken: Held = loop.create_future()
        waiters = self._waiting.setdefault(host_id, [])
        waiters.append(woken)
        # A bare timer that answers False, rather than `asyncio.timeout`: a held poll that runs
        # out (most of an idle fleet's polls) then ends without a cancellation thrown into its
        # task and caught again, and one that is woken costs a future instead of an Event.
        timer = loop.call_later(timeout, _answer, woken, False)
        try:
            return await woken
        finally:
            timer.cancel()
            if self._waiting.get(host_id) is waiters:  # not woken: leave no trace
                waiters.remove(woken)
                if not waiters:
                    del self._waiting[host_id]

    def release_all(self) -> None:
        """Wakes every waiting poll, and makes later waits return at once.

        Called when shutdown begins: a held poll would otherwise keep its connection, and the
        server's graceful shutdown, for the whole poll wait. Its agent gets its usual "no job"
        answer and polls again, reaching another replica or this one once restarted.
        """
        self._released = True
        waiting, self._waiting = self._waiting, {}
        for waiters in waiting.values():
            _wake(waiters, True)

    def _forget_unclaimed_before(self, cutoff: float) -> None:
        while self._unclaimed:
            host_id, noted = next(iter(self._unclaimed.items()))
            if noted >= cutoff:
                return
            del self._unclaimed[host_id]

    @property
    def waiting_hosts(self) -> int:
        """Hosts with at least one waiting poll (a gauge for metrics)."""
        return len(self._waiting)

    @property
    def remembered_hosts(self) -> int:
        """Hosts with a notification nobody has waited for yet."""
        return len(self._unclaimed)


def _answer(woken: Held, answer: JobAssignment | bool) -> None:
    if not woken.done():  # a poll cancelled (its agent gone) has nobody to answer
        woken.set_result(answer)


def _wake(held: list[Held], answer: JobAssignment | bool) -> None:
    for woken in held:
        _answer(woken, answer)
