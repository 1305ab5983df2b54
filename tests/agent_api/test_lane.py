"""The agents' lane to the database: its width, its wait, and the 503 of a full lane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from tests.agent_api.agent_calls import API, agent_error, auth, enrol, last_seen, leased_fix
from tests.agent_api.fake_jobs import FakeJobSource, fix_work
from tests.agent_api.harness import agent_app
from vulfix.agent_api import MemoryJobNotifier
from vulfix.agent_api.lane import CONTROL_RESERVE, MINIMUM_SLOTS, AgentLane, LaneBusy, agent_slots
from vulfix.agent_api.routes import BUSY_RETRY_AFTER
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry


def test_the_lane_leaves_the_reserve_to_the_rest_and_never_closes() -> None:
    assert agent_slots(15) == 15 - CONTROL_RESERVE
    assert agent_slots(1) == MINIMUM_SLOTS  # SQLite's one connection
    # SQLite commits agents' operations together: room for one transaction committing and
    # the next gathering.
    assert agent_slots(1, per_transaction=32) == MINIMUM_SLOTS * 32
    with pytest.raises(ValueError, match="at least one slot"):
        AgentLane(0)


async def test_a_full_lane_admits_the_next_as_a_slot_frees() -> None:
    lane = AgentLane(2, wait=5)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str) -> None:
        async with lane.admitted():
            order.append(f"in {name}")
            await release.wait()
            order.append(f"out {name}")

    holders = [asyncio.create_task(hold(name)) for name in ("a", "b")]
    await asyncio.sleep(0)
    third = asyncio.create_task(hold("c"))
    await asyncio.sleep(0.01)
    assert order == ["in a", "in b"]
    release.set()
    await asyncio.gather(*holders, third)
    assert order[-2:] == ["in c", "out c"]


async def test_a_lane_full_for_the_whole_wait_is_busy_and_a_failed_block_frees_its_slot() -> None:
    lane = AgentLane(1, wait=0.05)
    with pytest.raises(RuntimeError):
        async with lane.admitted():
            raise RuntimeError("the store failed")
    async with lane.admitted():
        with pytest.raises(LaneBusy, match="1 agent requests already use the database"):
            async with lane.admitted():
                pass
    async with lane.admitted():  # the refused waiter took nothing with it
        pass


async def test_waiters_are_served_in_arrival_order_and_each_refused_at_its_own_deadline() -> None:
    lane = AgentLane(1, wait=0.2)
    loop = asyncio.get_running_loop()
    outcomes: dict[str, str] = {}

    async def wait_for_turn(name: str) -> None:
        began = loop.time()
        try:
            async with lane.admitted():
                outcomes[name] = "in"
        except LaneBusy:
            outcomes[name] = f"busy after {loop.time() - began:.1f}"

    async with lane.admitted():
        early = asyncio.create_task(wait_for_turn("early"))
        await asyncio.sleep(0.1)
        late = asyncio.create_task(wait_for_turn("late"))
        await asyncio.sleep(0.15)  # the early waiter's deadline has passed, not the late one's
        assert outcomes == {"early": "busy after 0.2"}
    await asyncio.gather(early, late)
    assert outcomes == {"early": "busy after 0.2", "late": "in"}
    async with lane.admitted():  # every slot came back
        pass


async def test_a_waiter_cancelled_as_its_turn_comes_passes_the_slot_on() -> None:
    lane = AgentLane(1, wait=5)
    entered: list[str] = []

    async def wait_for_turn(name: str) -> None:
        async with lane.admitted():
            entered.append(name)

    async with lane.admitted():
        first = asyncio.create_task(wait_for_turn("first"))
        second = asyncio.create_task(wait_for_turn("second"))
        await asyncio.sleep(0)
    # The holder left and handed its slot to `first`, which is cancelled before it runs.
    first.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled() and entered == ["second"]
    async with asyncio.timeout(1):
        async with lane.admitted():  # the lane is free again: nothing leaked
            pass


async def test_a_cancelled_waiter_leaves_the_queue_without_taking_a_slot() -> None:
    lane = AgentLane(1, wait=5)
    async with lane.admitted():
        gone = asyncio.create_task(lane.admitted().__aenter__())
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
    async with asyncio.timeout(1):
        async with lane.admitted():
            pass


@pytest.fixture
def lane() -> AgentLane:
    return AgentLane(1, wait=0.05)


@pytest.fixture
async def lane_http(
    registry: SqlHostRegistry,
    jobs: FakeJobSource,
    notifier: MemoryJobNotifier,
    clock: ManualClock,
    lane: AgentLane,
) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = agent_app(registry, jobs, notifier, clock, lane=lane)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vulfix.test") as client:
        yield client


async def test_a_report_meeting_a_full_lane_is_a_busy_503_and_changes_nothing(
    lane_http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    lane: AgentLane,
    engine: AsyncEngine,
) -> None:
    host, job = await leased_fix(lane_http, registry, clock, jobs)
    await registry.flush()  # last-seen times are written after the answer
    seen = await last_seen(engine, host.host_id)
    url = f"{API}/jobs/{job.job_id}/result"
    report = {"outcome": "success"}

    clock.advance(30)
    async with lane.admitted():
        busy = await lane_http.post(url, json=report, headers=host.headers)
    agent_error(busy, 503, "server_busy")
    assert busy.headers["retry-after"] == str(BUSY_RETRY_AFTER)
    assert jobs.report_calls == 0 and job.job_id not in jobs.results
    await registry.flush()
    assert await last_seen(engine, host.host_id) == seen

    resent = await lane_http.post(url, json=report, headers=host.headers)
    assert resent.json() == {"applied": True, "detail": "", "next_job": None}
    await registry.flush()
    assert await last_seen(engine, host.host_id) != seen


async def test_a_long_poll_holds_no_place_in_the_lane_while_it_waits(
    lane_http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    notifier: MemoryJobNotifier,
) -> None:
    waiting = await enrol(lane_http, registry, clock, "q-1")
    other = await enrol(lane_http, registry, clock, "q-2")
    poll = asyncio.create_task(
        lane_http.get(f"{API}/jobs", params={"wait": 5}, headers=waiting.headers)
    )
    await asyncio.sleep(0.1)  # the poll is waiting for a job
    beat = await lane_http.post(f"{API}/heartbeat", headers=other.headers, json={})
    assert beat.status_code == 200, beat.text
    job = jobs.add(waiting.quuid, fix_work())
    notifier.notify([waiting.host_id])
    answer = await poll
    assert answer.status_code == 200 and answer.json()["job_id"] == job.job_id


async def test_a_token_is_read_without_waiting_for_the_lane(
    engine: AsyncEngine, jobs: FakeJobSource, notifier: MemoryJobNotifier, clock: ManualClock
) -> None:
    """Only a request's own work waits for the lane: the registry reads the tokens it does
    not remember (none, here) while the lane is full, so an unknown token is a 401 at once,
    not a 503 after the lane's wait, and a known host's request is served once a slot frees."""
    registry = SqlHostRegistry(engine, auth_cache_seconds=0, touch_interval=timedelta(0))
    lane = AgentLane(1, wait=5)
    app = agent_app(registry, jobs, notifier, clock, lane=lane)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vulfix.test") as http:
        host = await enrol(http, registry, clock, "q-1")
        async with lane.admitted():
            async with asyncio.timeout(2):  # well within the lane's wait
                unknown = await http.post(f"{API}/heartbeat", headers=auth("vfh_x"), json={})
            agent_error(unknown, 401, "unauthorized")
            beat = asyncio.create_task(http.post(f"{API}/heartbeat", headers=host.headers, json={}))
            await asyncio.sleep(0.05)
            assert not beat.done(), "its heartbeat waits for a slot"
        answer = await beat
    assert answer.status_code == 200, answer.text
