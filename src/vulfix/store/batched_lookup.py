"""Lookups that arrive together, answered by one read of the store.

A task's start wakes a whole fleet at once. Each of those requests whose host token had lapsed
from the registry's cache (it lasts 30 s and agents poll every 20 to 25 s: every other poll)
read its host alone: a connection checked out, one statement, the connection back, and a turn
in the agent lane, request by request. Here the keys asked for while the event loop goes round
once are read in one statement, and the keys asked for while that read runs go in the next.
An idle server reads a lone key at once, as before.

Every caller waits on a future of its own, so one that gives up (its client went away) cancels
nothing for the others; a failed read fails each caller of that batch with the read's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator
from itertools import islice
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Keys read in one statement at most: within SQLite's and asyncpg's parameter limits, and
# a read short enough that the loop is not held for long.
MAX_BATCH = 500


class BatchedLookup(Generic[K, V]):
    def __init__(self, read: Callable[[list[K]], Awaitable[dict[K, V]]]) -> None:
        """`read(keys)` answers what it found of `keys`; a key it leaves out is not there."""
        self._read = read
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def find(self, key: K) -> V | None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(answer)
        if self._reader is None or self._reader.done():  # done: cancelled before it ran
            self._reader = loop.create_task(self._read_waiting())
        return await answer

    async def _read_waiting(self) -> None:
        batch: dict[K, list[asyncio.Future[V | None]]] = {}
        try:
            while self._waiting:
                keys = list(islice(self._waiting, MAX_BATCH))  # the oldest first
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._read(keys)
                except Exception as error:
                    for _key, answer in _unanswered(batch):
                        answer.set_exception(error)
                else:
                    for key, answer in _unanswered(batch):
                        answer.set_result(found.get(key))
        finally:
            self._reader = None
            # Only if cancelled (the server stopping) may callers still wait: release them.
            for left in (batch, self._waiting):
                for _key, answer in _unanswered(left):
                    answer.cancel()
            self._waiting.clear()


def _unanswered(
    batch: dict[K, list[asyncio.Future[V | None]]],
) -> Iterator[tuple[K, asyncio.Future[V | None]]]:
    """Each caller's (key, future), but those of callers that gave up (cancelled)."""
    for key, answers in batch.items():
        for answer in answers:
            if not answer.done():
                yield key, answer
