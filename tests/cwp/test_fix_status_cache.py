"""DescribeVulFixStatus answers from its cache only while they are still true."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tests.cwp.inventory_setup import caller_of
from tests.fixing.engine_harness import Harness, make_harness
from vulfix.cwp.display_time import DisplayClock, parse_zone
from vulfix.cwp.fix_status import DescribeVulFixStatusRequest
from vulfix.cwp.fix_status_action import FixStatusAction
from vulfix.fixing.task_status import TaskLookup
from vulfix.fixing.task_view import RETRY_WINDOW, DurationEstimates, TaskView
from vulfix.store.fix_task_reader import SqlTaskReader


@pytest.fixture
async def harness(migrated_db_url: str) -> AsyncIterator[Harness]:
    h = await make_harness(migrated_db_url)
    yield h
    await h.store.engine.dispose()


async def answer(action: FixStatusAction, harness: Harness, fix_id: int) -> dict[str, Any]:
    body = await action(DescribeVulFixStatusRequest(fix_id=fix_id), caller_of(harness.account_id))
    decoded: dict[str, Any] = msgspec.json.decode(bytes(body))
    return decoded


async def test_a_finished_task_stops_offering_a_retry_when_the_window_closes(
    harness: Harness,
) -> None:
    await harness.add_host("h0", snapshots=False)
    await harness.add_vulnerability(7, on=["h0"])
    fix_id = await harness.create([(7, ["h0"])])
    await harness.finish("h0", "failure", "E: broken")
    action = FixStatusAction(harness.reader, DisplayClock(parse_zone("+08:00")), harness.clock)

    assert (await answer(action, harness, fix_id))["IsAllowRetry"] == 1
    harness.clock.advance(RETRY_WINDOW.total_seconds() - 1)
    assert (await answer(action, harness, fix_id))["IsAllowRetry"] == 1
    harness.clock.advance(2)
    assert (await answer(action, harness, fix_id))["IsAllowRetry"] == 0


class CountingReader:
    """The real reader, counting whole-task reads and estimate reads."""

    def __init__(self, reader: SqlTaskReader) -> None:
        self.reader = reader
        self.task_reads = 0
        self.estimate_reads = 0

    async def find_task(self, account_id: int, lookup: TaskLookup) -> TaskView | None:
        self.task_reads += 1
        return await self.reader.find_task(account_id, lookup)

    async def version(self, account_id: int, lookup: TaskLookup) -> tuple[int, int] | None:
        return await self.reader.version(account_id, lookup)

    async def duration_estimates(self, account_id: int) -> DurationEstimates:
        self.estimate_reads += 1
        return await self.reader.duration_estimates(account_id)


async def test_a_running_task_is_read_once_per_version_and_its_remaining_time_still_moves(
    harness: Harness,
) -> None:
    for quuid in ("h0", "h1"):
        await harness.add_host(quuid)
    await harness.add_vulnerability(7, on=["h0", "h1"])
    fix_id = await harness.create([(7, ["h0", "h1"])])
    await harness.finish("h0")  # h0's snapshot done: a mean snapshot took 5 s
    reader = CountingReader(harness.reader)
    display = DisplayClock(parse_zone("+08:00"))
    action = FixStatusAction(reader, display, harness.clock)  # type: ignore[arg-type]
    fresh = FixStatusAction(harness.reader, display, harness.clock, cache_bytes=0)

    first = await answer(action, harness, fix_id)
    job = await harness.poll("h0")  # h0's fix is dispatched, and counts down from here
    assert job is not None
    for _ in range(3):
        harness.clock.advance(2)
        cached, recomputed = (
            await answer(action, harness, fix_id),
            await answer(fresh, harness, fix_id),
        )
        assert cached == recomputed
    assert reader.task_reads == 2, "read again only for the dispatch (a new version)"
    # Each whole read reads the estimates afresh (a new version may come with new
    # durations); the two answers from the cache re-read them, being 2 s old each time
    # (they are kept for 1 s).
    assert reader.estimate_reads == reader.task_reads + 2
    reads = reader.estimate_reads
    harness.clock.advance(0.5)
    assert (await answer(action, harness, fix_id)) == (await answer(fresh, harness, fix_id))
    assert reader.estimate_reads == reads and reader.task_reads == 2, "all from the cache"
    assert first["RemainingTime"] > 0
    assert list(first)[-2:] == ["RemainingTime", "IsAllowRetry"]


async def test_callers_asking_at_once_share_one_build(harness: Harness) -> None:
    for quuid in ("h0", "h1"):
        await harness.add_host(quuid)
    await harness.add_vulnerability(7, on=["h0", "h1"])
    fix_id = await harness.create([(7, ["h0", "h1"])])
    reader = CountingReader(harness.reader)
    display = DisplayClock(parse_zone("+08:00"))
    action = FixStatusAction(reader, display, harness.clock)  # type: ignore[arg-type]

    answers = await asyncio.gather(*(answer(action, harness, fix_id) for _ in range(5)))
    assert reader.task_reads == 1
    assert all(a == answers[0] for a in answers) and answers[0]["HostCnt"] == 2

    await harness.finish("h0")  # a new version: built once more
    await asyncio.gather(*(answer(action, harness, fix_id) for _ in range(5)))
    assert reader.task_reads == 2


async def test_a_caller_that_goes_away_does_not_stop_the_build_for_the_others(
    harness: Harness,
) -> None:
    await harness.add_host("h0")
    await harness.add_vulnerability(7, on=["h0"])
    fix_id = await harness.create([(7, ["h0"])])
    reader = CountingReader(harness.reader)
    action = FixStatusAction(reader, DisplayClock(parse_zone("+08:00")), harness.clock)  # type: ignore[arg-type]
    first = asyncio.create_task(answer(action, harness, fix_id))
    second = asyncio.create_task(answer(action, harness, fix_id))
    while reader.task_reads == 0:  # noqa: ASYNC110 - waiting for the build to start
        await asyncio.sleep(0)
    first.cancel()
    assert (await second)["HostCnt"] == 1
    assert reader.task_reads == 1
