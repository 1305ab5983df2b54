from __future__ import annotations

import asyncio

from vulfix.agent_api import MemoryJobNotifier
from vulfix.fixing.agent_port import JobAssignment, SnapshotWork


def snapshot_job(job_id: int) -> JobAssignment:
    return JobAssignment(job_id, 7, 900.0, SnapshotWork("before-fix", 1))


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_notify_wakes_every_waiter_of_that_host_only() -> None:
    notifier = MemoryJobNotifier()
    first = asyncio.create_task(notifier.wait(1, 5))
    second = asyncio.create_task(notifier.wait(1, 5))
    other = asyncio.create_task(notifier.wait(2, 0.05))
    await asyncio.sleep(0)

    notifier.notify([1])

    assert list(await asyncio.wait_for(asyncio.gather(first, second), 1)) == [True, True]
    assert await other is False
    assert notifier.waiting_hosts == 0


async def test_a_wait_times_out_with_false_and_leaves_nothing_behind() -> None:
    notifier = MemoryJobNotifier()
    assert await notifier.wait(1, 0.01) is False
    assert await notifier.wait(1, 0) is False
    assert notifier.waiting_hosts == 0


async def test_a_notification_just_before_the_wait_is_not_lost() -> None:
    ticks = Ticks()
    notifier = MemoryJobNotifier(remember_seconds=2.0, monotonic=ticks)
    notifier.notify([1])
    ticks.now += 1.0
    assert await notifier.wait(1, 5) is True, "the job queued between the check and the wait"
    assert await notifier.wait(1, 0.01) is False, "a notification wakes one wait only"


async def test_unclaimed_notifications_are_forgotten_and_bounded() -> None:
    ticks = Ticks()
    notifier = MemoryJobNotifier(remember_seconds=2.0, max_remembered=3, monotonic=ticks)
    notifier.notify([1])
    ticks.now += 3.0
    assert await notifier.wait(1, 0.01) is False, "too old to matter"

    notifier.notify([10, 11, 12, 13])
    assert await notifier.wait(10, 0.01) is False, "the oldest was dropped past the bound"
    assert await notifier.wait(13, 5) is True
    assert notifier.remembered_hosts == 2
    ticks.now += 3.0
    notifier.notify([])
    assert notifier.remembered_hosts == 0


async def test_release_all_ends_held_polls_and_every_later_wait() -> None:
    notifier = MemoryJobNotifier()
    held = [asyncio.create_task(notifier.wait(host, 30)) for host in (1, 1, 2)]
    await asyncio.sleep(0)

    notifier.release_all()

    assert list(await asyncio.wait_for(asyncio.gather(*held), 1)) == [True, True, True]
    assert notifier.waiting_hosts == 0
    assert await asyncio.wait_for(notifier.wait(3, 30), 1) is False, "no new poll is held"


async def test_a_job_handed_over_answers_every_held_poll_of_its_host_only() -> None:
    notifier = MemoryJobNotifier()
    first = asyncio.create_task(notifier.wait(1, 5))
    second = asyncio.create_task(notifier.wait(1, 5))
    other = asyncio.create_task(notifier.wait(2, 0.05))
    await asyncio.sleep(0)
    assert notifier.waiting([1, 2, 3]) == {1, 2}

    notifier.hand_over({1: snapshot_job(41)})

    woken = await asyncio.wait_for(asyncio.gather(first, second), 1)
    assert woken == [snapshot_job(41), snapshot_job(41)]
    assert await other is False
    assert notifier.waiting([1, 2]) == set()


async def test_a_job_handed_over_after_its_poll_left_wakes_the_next_poll_to_ask() -> None:
    notifier = MemoryJobNotifier()
    assert await notifier.wait(1, 0.01) is False  # the poll timed out just before

    notifier.hand_over({1: snapshot_job(41)})

    # The job is leased in the store: the next poll is woken at once, asks, and gets it.
    assert await notifier.wait(1, 5) is True
    assert await notifier.wait(1, 0.01) is False, "woken once"


async def test_a_poll_cancelled_while_held_leaves_its_host_s_other_polls_waiting() -> None:
    notifier = MemoryJobNotifier()
    gone = asyncio.create_task(notifier.wait(1, 30))
    staying = asyncio.create_task(notifier.wait(1, 30))
    await asyncio.sleep(0)

    gone.cancel()  # its agent hung up
    await asyncio.gather(gone, return_exceptions=True)
    assert notifier.waiting([1]) == {1}

    notifier.hand_over({1: snapshot_job(41)})
    assert await asyncio.wait_for(staying, 1) == snapshot_job(41)

    last = asyncio.create_task(notifier.wait(2, 30))
    await asyncio.sleep(0)
    last.cancel()
    await asyncio.gather(last, return_exceptions=True)
    assert notifier.waiting_hosts == 0, "the host's entry goes with its last poll"
