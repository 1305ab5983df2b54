"""A task's first snapshot jobs handed straight to the polls held for them (`HeldPolls`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.fixing.engine_harness import TIMINGS, Harness, make_harness
from vulfix.agent_api import MemoryJobNotifier
from vulfix.fixing.agent_port import JobAssignment, JobResult, SnapshotWork
from vulfix.fixing.statuses import SnapshotStatus


@pytest.fixture
async def polls() -> MemoryJobNotifier:
    return MemoryJobNotifier()


@pytest.fixture
async def harness(migrated_db_url: str, polls: MemoryJobNotifier) -> AsyncIterator[Harness]:
    h = await make_harness(migrated_db_url, held_polls=polls)
    yield h
    await h.store.engine.dispose()


async def held(
    polls: MemoryJobNotifier, *host_ids: int
) -> list[asyncio.Task[JobAssignment | bool]]:
    waits = [asyncio.create_task(polls.wait(host_id, 30)) for host_id in host_ids]
    await asyncio.sleep(0)
    return waits


async def test_a_new_task_hands_each_held_poll_its_snapshot_job_leased(
    harness: Harness, polls: MemoryJobNotifier
) -> None:
    h1, idle, no_disk = (
        await harness.add_host("h1"),
        await harness.add_host("h2"),
        await harness.add_host("h3", snapshots=False),
    )
    await harness.add_vulnerability(7, on=["h1", "h2", "h3"])
    wait, fix_first = await held(polls, h1.host_id, no_disk.host_id)

    fix_id = await harness.create([(7, ["h1", "h2", "h3"])], save_days=3, snapshot_name="pre-7")

    handed = await asyncio.wait_for(wait, 1)
    assert isinstance(handed, JobAssignment)
    assert (handed.fix_id, handed.lease_seconds) == (fix_id, TIMINGS.lease_seconds)
    assert handed.work == SnapshotWork("pre-7", 3)
    # A fix is dispatched by its claim, so a host without snapshots, polling or not, is woken
    # (here through the harness's list, not the poll) to ask for its first job; so is a host
    # with no poll held.
    assert not fix_first.done(), "no job handed over for a first fix"
    fix_first.cancel()
    assert sorted(harness.woken) == [idle.host_id, no_disk.host_id]
    # The job is leased to h1 as a claim would lease it: asked again, it is the same job.
    again = await harness.poll("h1")
    assert again == handed


async def test_a_handed_over_job_is_reported_and_expires_like_any_leased_job(
    harness: Harness, polls: MemoryJobNotifier
) -> None:
    hosts = [await harness.add_host(quuid) for quuid in ("h1", "h2")]
    await harness.add_vulnerability(7, on=["h1", "h2"])
    waits = await held(polls, *(host.host_id for host in hosts))
    fix_id = await harness.create([(7, ["h1", "h2"])])
    first, second = await asyncio.wait_for(asyncio.gather(*waits), 1)
    assert isinstance(first, JobAssignment) and isinstance(second, JobAssignment)

    harness.clock.advance(5)
    result = JobResult("success", "", 0, "", "ref", 5)
    ack, fix = await harness.store.report_and_take_next(
        hosts[0], first.job_id, result, harness.clock.now()
    )
    assert ack.applied and fix is not None and type(fix.work).__name__ == "FixWork"

    harness.clock.advance(TIMINGS.lease_seconds + 1)
    assert (await harness.store.sweep(harness.clock.now())).leases_expired == 2
    status = await harness.status(fix_id=fix_id)
    snapshots = {s.host.quuid: s for s in status.view.snapshot_records}
    assert snapshots["h1"].status == SnapshotStatus.CREATED
    lost = snapshots["h2"]
    assert lost.status == SnapshotStatus.FAILED and "agent lost contact" in lost.fail_reason


async def test_a_poll_gone_before_the_hand_over_gets_its_job_with_its_next_poll(
    harness: Harness, polls: MemoryJobNotifier
) -> None:
    host = await harness.add_host("h1")
    await harness.add_vulnerability(7, on=["h1"])
    (wait,) = await held(polls, host.host_id)
    polls.waiting = lambda host_ids: {host.host_id}  # type: ignore[method-assign]
    wait.cancel()  # the agent hung up as the task was being written

    await harness.create([(7, ["h1"])])

    assert await polls.wait(host.host_id, 30) is True, "its next poll is woken at once"
    job = await harness.store.next_job(host, harness.clock.now(), woken=True)
    assert job is not None and isinstance(job.work, SnapshotWork)
