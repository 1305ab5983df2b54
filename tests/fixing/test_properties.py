"""Properties over random event sequences through the real engine and database.

After every event, for the whole task and for every filter (VulId, VulId+Quuid, Quuid):
FixSuccessCnt + FixFailCnt <= HostCnt; FixProgress == 100 iff FixEndTime is set; lists and
counts agree; and the task's progress never goes down except through a retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixing.engine_harness import Harness, make_harness
from vulfix.fixing import errors
from vulfix.fixing.agent_port import JobResult
from vulfix.fixing.statuses import FIX_FAILED, FixStatus, SnapshotStatus
from vulfix.fixing.task_view import TaskFigures

HOSTS = ("h0", "h1", "bm")
OUTCOMES = ("success", "failure", "unsupported")

events = st.lists(
    st.one_of(
        st.tuples(st.just("finish"), st.sampled_from(HOSTS), st.sampled_from(OUTCOMES)),
        st.tuples(st.just("lose"), st.sampled_from(HOSTS), st.just("")),
        st.tuples(st.just("retry_snapshot"), st.sampled_from(HOSTS), st.just("")),
        st.tuples(st.just("retry_fix"), st.sampled_from(HOSTS), st.just("")),
        st.tuples(st.just("cancel"), st.just(""), st.just("")),
    ),
    max_size=25,
)


def check(figures: TaskFigures) -> None:
    view = figures.view
    assert figures.fix_success_cnt + figures.fix_fail_cnt <= figures.host_cnt
    assert (figures.fix_progress == 100) == (figures.ended_at is not None)
    hosts = {r.host.quuid for r in view.fix_records}
    assert figures.host_cnt == len(hosts) == len(view.snapshot_records)
    assert {s.host.quuid for s in view.snapshot_records} == hosts
    assert figures.snapshot_fail_cnt == sum(
        s.status == SnapshotStatus.FAILED for s in view.snapshot_records
    )
    assert sum(len(item.records) for item in figures.items) == len(view.fix_records)
    for item in figures.items:
        assert item.fix_success_cnt + item.fail_cnt <= len(item.records)
        assert item.fail_cnt == sum(r.status in FIX_FAILED for r in item.records)
        assert (item.progress == 100) == all(r.status in (2, 3, 4) for r in item.records)
    if figures.ended_at is not None:
        assert figures.fix_success_cnt + figures.fix_fail_cnt == figures.host_cnt
        assert figures.remaining_seconds == 0


async def run_sequence(harness: Harness, sequence: list[tuple[str, str, str]], budget: str) -> None:
    for quuid in HOSTS:
        await harness.add_host(quuid, snapshots=quuid != "bm")
    await harness.add_vulnerability(7, on=list(HOSTS))
    await harness.add_vulnerability(8, on=["h0", "bm"])
    fix_id = await harness.create([(7, list(HOSTS)), (8, ["h0", "bm"])], max_concurrency=budget)
    previous = await harness.status(fix_id=fix_id)
    for kind, quuid, outcome in sequence:
        retried = await apply(harness, fix_id, kind, quuid, outcome)
        current = await harness.status(fix_id=fix_id)
        for figures in await every_view(harness, fix_id, current):
            check(figures)
        if not retried:
            assert current.fix_progress >= previous.fix_progress
            assert current.snapshot_progress >= previous.snapshot_progress
        previous = current


async def apply(harness: Harness, fix_id: int, kind: str, quuid: str, outcome: str) -> bool:
    now = harness.clock.now
    try:
        if kind == "finish":
            job = await harness.poll(quuid)
            if job is not None:
                harness.clock.advance(3)
                await harness.store.report(
                    harness.hosts[quuid], job.job_id, JobResult(outcome, "boom"), now()
                )  # type: ignore[arg-type]
        elif kind == "lose":
            await harness.poll(quuid)
            harness.clock.advance(61)
            for host in HOSTS:
                await harness.set_online(host, True)
            await harness.store.sweep(now())
        elif kind == "retry_snapshot":
            status = await harness.status(fix_id=fix_id)
            record = next(s for s in status.view.snapshot_records if s.host.quuid == quuid)
            await harness.store.retry_snapshot(harness.account_id, fix_id, quuid, record.id, now())
            return True
        elif kind == "retry_fix":
            await harness.store.retry_fix(harness.account_id, fix_id, quuid, None, None, now())
            return True
        else:
            await harness.store.cancel(harness.account_id, fix_id, now())
    except (
        errors.RecordNotRetryable,
        errors.RecordBusy,
        errors.RecordBlocked,
        errors.RecordNotFound,
    ):
        pass
    except errors.SnapshotQuotaExhausted:
        pass
    return False


async def every_view(harness: Harness, fix_id: int, whole: TaskFigures) -> list[TaskFigures]:
    views = [whole]
    for vul_id in (7, 8):
        views.append(await harness.status(fix_id=fix_id, vul_id=vul_id))
        for quuid in HOSTS:
            try:
                views.append(await harness.status(vul_id=vul_id, quuid=quuid))
            except errors.TaskNotFound:
                assert vul_id == 8 and quuid == "h1"
    for quuid in HOSTS:
        views.append(await harness.status(fix_id=fix_id, quuid=quuid))
    return views


# SQLite explores; PostgreSQL (each example a database of its own, four times the cost)
# checks that the same sequences hold on its dialect and isolation.
EXAMPLES = {"sqlite": 40, "postgresql": 10}


def test_figures_stay_true_under_any_event_sequence(
    backend: str, fresh_databases: Callable[[], AbstractContextManager[str]]
) -> None:
    @settings(max_examples=EXAMPLES[backend], deadline=None)
    @given(sequence=events, budget=st.sampled_from(["", "1", "50%"]))
    def holds(sequence: list[tuple[str, str, str]], budget: str) -> None:
        async def scenario(url: str) -> None:
            harness = await make_harness(url, account="acme")
            try:
                await run_sequence(harness, sequence, budget)
            finally:
                await harness.store.engine.dispose()

        with fresh_databases() as url:
            asyncio.run(scenario(url))

    holds()


def test_statuses_used_by_the_properties_are_the_real_ones() -> None:
    assert {int(s) for s in FIX_FAILED} == {int(FixStatus.FAILED), int(FixStatus.SNAPSHOT_FAILED)}
