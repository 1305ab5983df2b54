"""Lookups that arrive together share one read; each caller gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from vulfix.store.batched_lookup import MAX_BATCH, BatchedLookup

KNOWN = {f"k{n}": n for n in range(2 * MAX_BATCH)}


class Reads:
    """A read of `KNOWN` that records every batch it is asked; with `gate` set, each read
    waits for it (as a read on another connection would let the loop go on)."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.gate = gate
        self.failure: Exception | None = None

    async def __call__(self, keys: list[str]) -> dict[str, int]:
        self.batches.append(keys)
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return {key: KNOWN[key] for key in keys if key in KNOWN}


async def test_lookups_made_together_are_one_read_and_each_gets_its_own_answer() -> None:
    reads = Reads()
    lookup = BatchedLookup(reads)
    found = await asyncio.gather(*(lookup.find(key) for key in ("k1", "k2", "missing", "k1")))
    assert found == [1, 2, None, 1]
    assert reads.batches == [["k1", "k2", "missing"]]


async def test_a_lone_lookup_is_read_at_once_and_the_next_reads_again() -> None:
    reads = Reads()
    lookup = BatchedLookup(reads)
    assert await lookup.find("k3") == 3
    assert await lookup.find("k3") == 3
    assert reads.batches == [["k3"], ["k3"]]


async def test_a_read_takes_at_most_max_batch_keys_oldest_first() -> None:
    reads = Reads()
    lookup = BatchedLookup(reads)
    keys = [f"k{n}" for n in range(MAX_BATCH + 3)]
    found = await asyncio.gather(*(lookup.find(key) for key in keys))
    assert found == list(range(MAX_BATCH + 3))
    assert reads.batches == [keys[:MAX_BATCH], keys[MAX_BATCH:]]


async def test_keys_asked_while_a_read_runs_go_in_the_next() -> None:
    gate = asyncio.Event()
    reads = Reads(gate)
    lookup = BatchedLookup(reads)
    first = asyncio.create_task(lookup.find("k1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the read of k1 is under way
    later = [asyncio.create_task(lookup.find(key)) for key in ("k2", "k3")]
    await asyncio.sleep(0)
    gate.set()
    assert await first == 1 and [await task for task in later] == [2, 3]
    assert reads.batches == [["k1"], ["k2", "k3"]]


async def test_a_caller_that_gives_up_cancels_nothing_for_the_others() -> None:
    gate = asyncio.Event()
    lookup = BatchedLookup(Reads(gate))
    gone = asyncio.create_task(lookup.find("k1"))
    staying = asyncio.create_task(lookup.find("k1"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await staying == 1
    assert gone.cancelled()


async def test_a_failed_read_fails_its_callers_and_the_next_lookup_reads_again() -> None:
    reads = Reads()
    reads.failure = OSError("the database went away")
    lookup = BatchedLookup(reads)
    failed = await asyncio.gather(lookup.find("k1"), lookup.find("k2"), return_exceptions=True)
    assert all(isinstance(error, OSError) for error in failed)

    reads.failure = None
    assert await lookup.find("k1") == 1
    assert reads.batches == [["k1", "k2"], ["k1"]]


async def test_a_stopping_reader_releases_its_waiting_callers() -> None:
    gate = asyncio.Event()
    lookup = BatchedLookup(Reads(gate))
    reading = asyncio.create_task(lookup.find("k1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    waiting = asyncio.create_task(lookup.find("k2"))
    await asyncio.sleep(0)
    assert lookup._reader is not None
    lookup._reader.cancel()  # as when the server stops
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(asyncio.CancelledError):
        await reading


async def test_a_reader_cancelled_before_it_ran_is_replaced() -> None:
    reads = Reads()
    lookup = BatchedLookup(reads)
    first = asyncio.create_task(lookup.find("k1"))
    await asyncio.sleep(0)  # `find` has started the reader, which has not run yet
    assert lookup._reader is not None
    lookup._reader.cancel()
    await asyncio.sleep(0)
    first.cancel()
    async with asyncio.timeout(1):  # a reader that never ran must not hold the next lookup
        assert await lookup.find("k2") == 2
    assert reads.batches and "k2" in reads.batches[-1]
