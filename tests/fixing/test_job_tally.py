"""The engine's job figures (`store.job_tally`): always what a full count of the jobs says,
while reading a finished job only once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select, update

from tests.fixing.engine_harness import TIMINGS, Harness, make_harness
from vulfix.store import job_tally
from vulfix.store.database import read_transaction, write_transaction
from vulfix.store.fixing_tables import jobs
from vulfix.store.job_tally import SETTLE
from vulfix.store.tables import to_stored

JobCounts = list[tuple[str, str, str, int]]


async def full_count(harness: Harness) -> JobCounts:
    key = (jobs.c.kind, jobs.c.state, jobs.c.outcome)
    query = select(*key, func.count()).group_by(*key).order_by(*key)
    async with read_transaction(harness.store.engine) as conn:
        return [
            (kind, state, outcome, int(n)) for kind, state, outcome, n in await conn.execute(query)
        ]


async def assert_counts_true(harness: Harness) -> JobCounts:
    counted = await harness.store.job_counts(harness.clock.now())
    assert counted == await full_count(harness)
    return counted


async def test_the_figures_agree_with_a_full_count_at_every_step(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_tally, "SPAN", 3)  # a history read in several pieces
    quuids = [f"h{n}" for n in range(5)]
    for quuid in quuids:
        await harness.add_host(quuid)
    await harness.add_vulnerability(7, on=quuids)
    await harness.add_vulnerability(8, on=["h0", "h1"])
    assert await harness.store.job_counts(harness.clock.now()) == []

    first = await harness.create([(7, quuids)])
    await assert_counts_true(harness)
    assert await harness.poll("h0") is not None  # leased
    await harness.finish("h1")  # its snapshot done, its fix queued
    await assert_counts_true(harness)
    harness.clock.advance(20)  # younger than SETTLE: read afresh on PostgreSQL
    assert await harness.drain("h2") == 2
    await harness.finish("h3", outcome="failure", reason="disk full")
    await assert_counts_true(harness)
    harness.clock.advance(SETTLE.total_seconds() + 1)  # everything so far has settled
    await assert_counts_true(harness)
    for quuid in ("h0", "h1"):
        await harness.set_online(quuid, True)  # seen again after the clock moved on
    second = await harness.create([(8, ["h0", "h1"])])
    await assert_counts_true(harness)
    # Leases run out and undelivered jobs time out: unfinished jobs, counted before, finish.
    harness.clock.advance(TIMINGS.lease_seconds + TIMINGS.dispatch_timeout + 1)
    figures = await harness.store.sweep(harness.clock.now())
    assert figures.leases_expired >= 1 and figures.dispatch_timeouts >= 1
    counted = await assert_counts_true(harness)
    assert {state for _kind, state, _outcome, _n in counted} >= {"done", "expired", "cancelled"}
    await harness.store.cancel(harness.account_id, second, harness.clock.now())
    await harness.store.cancel(harness.account_id, first, harness.clock.now())
    await assert_counts_true(harness)


async def test_a_finished_job_is_read_only_once(harness: Harness) -> None:
    """Shown by changing finished jobs behind the tally's back, which the engine never does:
    a refresh no longer sees them, while it still follows every unfinished job."""
    for quuid in ("h0", "h1"):
        await harness.add_host(quuid)
    await harness.add_vulnerability(7, on=["h0", "h1"])
    await harness.create([(7, ["h0", "h1"])])
    assert await harness.drain("h0") == 2
    assert await harness.poll("h1") is not None
    harness.clock.advance(SETTLE.total_seconds() + 1)
    before = await assert_counts_true(harness)
    async with write_transaction(harness.store.engine) as conn:
        await conn.execute(update(jobs).where(jobs.c.state == "done").values(outcome="failure"))
    await harness.finish("h1")  # the leased snapshot job: followed until it finished
    harness.clock.advance(SETTLE.total_seconds() + 1)
    after = await harness.store.job_counts(harness.clock.now())
    done = {(kind, outcome): n for kind, state, outcome, n in after if state == "done"}
    assert done == {("snapshot", "success"): 2, ("fix", "success"): 1}
    assert ("snapshot", "leased", "", 1) in before and all(s != "leased" for _k, s, _o, _n in after)


@pytest.fixture
async def postgres_harness(postgres_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(postgres_url)
    yield harness
    await harness.store.engine.dispose()


async def test_a_job_that_appears_after_higher_ids_is_counted(postgres_harness: Harness) -> None:
    """On PostgreSQL a transaction that took a lower id may commit after one that took a
    higher id; written here as two inserts with explicit ids."""
    harness = postgres_harness
    host = await harness.add_host("h0")

    async def add_job(job_id: int) -> None:
        row = {
            "job_id": job_id,
            "account_id": harness.account_id,
            "host_id": host.host_id,
            "kind": "snapshot_delete",
            "state": "done",
            "outcome": "success",
            "created_at": to_stored(harness.clock.now()),
        }
        async with write_transaction(harness.store.engine) as conn:
            await conn.execute(insert(jobs).values(row))

    await add_job(100)
    assert await assert_counts_true(harness) == [("snapshot_delete", "done", "success", 1)]
    harness.clock.advance(SETTLE.total_seconds() / 2)
    await add_job(50)
    assert await assert_counts_true(harness) == [("snapshot_delete", "done", "success", 2)]
    harness.clock.advance(SETTLE.total_seconds())
    assert await assert_counts_true(harness) == [("snapshot_delete", "done", "success", 2)]
