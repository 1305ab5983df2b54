"""Several replicas on one PostgreSQL database at once, as `vulfix serve` replicas run.

Each replica is its own engine (its own connections), so their transactions really overlap:
claims, reports, sweeps and task creation race through different replicas, and the outcome
must be what one writer at a time would have produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import func, select

from tests.fixing.engine_harness import TIMINGS, Harness, make_harness
from vulfix.cwp.display_time import DisplayClock, parse_zone
from vulfix.cwp.fix_status import DescribeVulFixStatusRequest
from vulfix.cwp.fix_status_action import FixStatusAction
from vulfix.fixing import errors
from vulfix.fixing.agent_port import HostIdentity, JobResult
from vulfix.fixing.planning import FixItemRequest, FixRequest
from vulfix.fixing.services import create_fix_task
from vulfix.fixing.statuses import FixStatus, SnapshotStatus
from vulfix.fixing.transitions import REASON_LEASE_EXPIRED
from vulfix.store.database import create_engine
from vulfix.store.fix_task_reader import SqlTaskReader
from vulfix.store.fixing_store import SqlFixingStore
from vulfix.store.fixing_tables import jobs, snapshot_records
from vulfix.tcapi import Caller

REPLICAS = 3
SUCCESS = JobResult("success", "", 0, "done", "ref", 2.0)


@dataclass
class Replica:
    store: SqlFixingStore
    reader: SqlTaskReader


@dataclass
class Deployment:
    harness: Harness  # seeds the inventory and reads results through an engine of its own
    replicas: list[Replica]

    def now(self) -> datetime:
        return self.harness.clock.now()

    def host(self, quuid: str) -> HostIdentity:
        return self.harness.hosts[quuid]

    async def fleet(
        self, count: int, vul_ids: tuple[int, ...] = (7,), *, snapshots: bool = True
    ) -> list[str]:
        quuids = [f"h{n:02d}" for n in range(count)]
        for quuid in quuids:
            await self.harness.add_host(quuid, snapshots=snapshots)
        for vul_id in vul_ids:
            await self.harness.add_vulnerability(vul_id, on=quuids)
        return quuids


@pytest.fixture
async def deployment(postgres_url: str) -> AsyncIterator[Deployment]:
    harness = await make_harness(postgres_url)
    replicas = []
    for _ in range(REPLICAS):
        engine = create_engine(postgres_url)
        # Wake-ups are left out: agents here poll again at once.
        store = SqlFixingStore(engine, TIMINGS, lambda _hosts: None)
        replicas.append(Replica(store, SqlTaskReader(engine)))
    yield Deployment(harness, replicas)
    for replica in replicas:
        await replica.store.engine.dispose()
    await harness.store.engine.dispose()


async def job_rows(deployment: Deployment) -> list[tuple[Any, ...]]:
    """(kind, state, snapshot record, fix record) of every job."""
    query = select(jobs.c.kind, jobs.c.state, jobs.c.snapshot_record_id, jobs.c.fix_record_id)
    async with deployment.harness.store.engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(query)]


async def test_agents_polling_and_reporting_through_every_replica_run_each_job_once(
    deployment: Deployment,
) -> None:
    quuids = await deployment.fleet(16, vul_ids=(7, 8))
    fix_id = await deployment.harness.create([(7, quuids), (8, quuids)])
    leased_to: dict[int, str] = {}

    async def agent(index: int, quuid: str) -> int:
        host, ran = deployment.host(quuid), 0
        while True:
            # The host's long poll and a leftover one land on two replicas at once.
            pollers = [deployment.replicas[(index + k) % REPLICAS] for k in (0, 1)]
            polls = await asyncio.gather(
                *(p.store.next_job(host, deployment.now()) for p in pollers)
            )
            handed = {job.job_id for job in polls if job is not None}
            assert len(handed) <= 1, f"{quuid} was handed two jobs at once: {handed}"
            if not handed:
                return ran
            job_id = handed.pop()
            assert leased_to.setdefault(job_id, quuid) == quuid
            # The agent resends its report through every replica at once.
            acks = await asyncio.gather(
                *(
                    r.store.report(host, job_id, SUCCESS, deployment.now())
                    for r in deployment.replicas
                )
            )
            assert sum(ack.applied for ack in acks) == 1
            ran += 1

    ran = await asyncio.gather(*(agent(i, q) for i, q in enumerate(quuids)))

    assert ran == [3] * len(quuids)  # a snapshot, then one fix per vulnerability
    status = await deployment.harness.status(fix_id=fix_id)
    assert (status.fix_progress, status.snapshot_progress) == (100, 100)
    assert status.fix_success_cnt == len(quuids)
    done = [row for row in await job_rows(deployment) if row[1] == "done"]
    assert len(done) == len(leased_to) == 3 * len(quuids)
    # Every record was run by exactly one job.
    assert len({(kind, s, f) for kind, _state, s, f in done}) == len(done)


async def test_replicas_sweeping_at_once_expire_each_lost_lease_once(
    deployment: Deployment,
) -> None:
    quuids = await deployment.fleet(12)
    fix_id = await deployment.harness.create([(7, quuids)])
    held = {}
    for index, quuid in enumerate(quuids):
        replica = deployment.replicas[index % REPLICAS]
        job = await replica.store.next_job(deployment.host(quuid), deployment.now())
        assert job is not None
        held[quuid] = job.job_id
    deployment.harness.clock.advance(TIMINGS.lease_seconds + 1)
    late = quuids[::3]  # these agents report just as the lease runs out

    sweeps, acks = await asyncio.gather(
        asyncio.gather(*(r.store.sweep(deployment.now()) for r in deployment.replicas * 2)),
        asyncio.gather(
            *(
                deployment.replicas[i % REPLICAS].store.report(
                    deployment.host(q), held[q], SUCCESS, deployment.now()
                )
                for i, q in enumerate(late)
            )
        ),
    )
    again = await asyncio.gather(*(r.store.sweep(deployment.now()) for r in deployment.replicas))

    applied = {q for q, ack in zip(late, acks, strict=True) if ack.applied}
    expired = sum(figures.leases_expired for figures in sweeps)
    assert expired + len(applied) == len(quuids)
    assert sum(figures.leases_expired for figures in again) == 0
    status = await deployment.harness.status(fix_id=fix_id)
    for record in status.view.snapshot_records:
        if record.host.quuid in applied:  # an acknowledged report is never lost
            assert record.status == SnapshotStatus.CREATED
        else:
            assert record.status == SnapshotStatus.FAILED
            assert record.fail_reason == REASON_LEASE_EXPIRED.format(seconds=TIMINGS.lease_seconds)
    states = sorted(
        state for kind, state, _s, _f in await job_rows(deployment) if kind == "snapshot"
    )
    assert states == sorted(["done"] * len(applied) + ["expired"] * expired)


async def test_a_report_resent_through_every_replica_at_once_is_applied_once(
    deployment: Deployment,
) -> None:
    (quuid,) = await deployment.fleet(1, snapshots=False)  # its first job is the fix
    fix_id = await deployment.harness.create([(7, [quuid])])
    job = await deployment.replicas[0].store.next_job(deployment.host(quuid), deployment.now())
    assert job is not None
    failure = JobResult("failure", "E: broken", 100, "boom", "", 3.0)

    acks = await asyncio.gather(
        *(
            r.store.report(deployment.host(quuid), job.job_id, failure, deployment.now())
            for r in deployment.replicas * 3
        )
    )

    assert [ack.applied for ack in acks].count(True) == 1
    assert {ack.detail for ack in acks if not ack.applied} == {"already applied"}
    status = await deployment.harness.status(fix_id=fix_id)
    (record,) = status.view.fix_records
    assert (record.status, record.fail_reason) == (FixStatus.FAILED, "E: broken")
    assert await deployment.harness.finding_state(quuid, 7) == 9  # fix failed


async def test_tasks_created_at_once_through_every_replica_all_run_to_the_end(
    deployment: Deployment,
) -> None:
    vul_ids = tuple(range(100, 112))
    quuids = await deployment.fleet(6, vul_ids=vul_ids)

    fix_ids = await asyncio.gather(
        *(
            create_fix_task(
                deployment.replicas[index % REPLICAS].store,
                deployment.harness.account_id,
                FixRequest(items=(FixItemRequest(vul_id, 0, 0, tuple(quuids)),), save_days=1),
                deployment.now(),
            )
            for index, vul_id in enumerate(vul_ids)
        )
    )

    assert len(set(fix_ids)) == len(vul_ids)
    active = [row for row in await job_rows(deployment) if row[1] in ("queued", "leased")]
    assert len(active) == len(quuids)  # every host started, each on one job
    # No host is forgotten: draining through the replicas finishes every task.
    for index, quuid in enumerate(quuids):
        replica = deployment.replicas[index % REPLICAS]
        while (
            job := await replica.store.next_job(deployment.host(quuid), deployment.now())
        ) is not None:
            ack = await replica.store.report(
                deployment.host(quuid), job.job_id, SUCCESS, deployment.now()
            )
            assert ack.applied
    for fix_id in fix_ids:
        status = await deployment.harness.status(fix_id=fix_id)
        assert len(status.view.fix_records) == len(status.view.snapshot_records) == len(quuids)
        assert status.fix_success_cnt == len(quuids)


async def test_one_pending_finding_is_claimed_by_one_of_several_requests(
    deployment: Deployment,
) -> None:
    quuids = await deployment.fleet(3)
    request = FixRequest(items=(FixItemRequest(7, 0, 0, tuple(quuids)),), save_days=1)
    account = deployment.harness.account_id

    outcomes = await asyncio.gather(
        *(
            create_fix_task(r.store, account, request, deployment.now())
            for r in deployment.replicas * 2
        ),
        return_exceptions=True,
    )

    created = [o for o in outcomes if isinstance(o, int)]
    assert len(created) == 1
    assert all(isinstance(o, errors.InvalidFixRequest) for o in outcomes if o not in created)
    async with deployment.harness.store.engine.connect() as conn:
        count = select(func.count()).select_from(snapshot_records)
        assert (await conn.execute(count)).scalar_one() == len(quuids)


async def test_readers_on_two_replicas_answer_alike_after_changes_through_a_third(
    deployment: Deployment,
) -> None:
    quuids = await deployment.fleet(3, vul_ids=(7, 8))
    writer, readers = deployment.replicas[2], deployment.replicas[:2]
    account, clock = deployment.harness.account_id, deployment.harness.clock
    display = DisplayClock(parse_zone("+08:00"))
    actions = [FixStatusAction(r.reader, display, clock) for r in readers]
    uncached = FixStatusAction(writer.reader, display, clock, running_ttl=0, cache_bytes=0)
    caller = Caller(account, "acme", 1, "AKID", False, "request", "en-US", "ap-guangzhou")
    items = tuple(FixItemRequest(vul_id, 0, 0, tuple(quuids)) for vul_id in (7, 8))
    fix_id = await create_fix_task(
        writer.store, account, FixRequest(items=items, save_days=1), deployment.now()
    )
    lookups = [
        DescribeVulFixStatusRequest(fix_id=fix_id),
        DescribeVulFixStatusRequest(vul_id=8),
        DescribeVulFixStatusRequest(vul_id=7, quuid=quuids[1]),
    ]

    async def answers() -> list[list[object]]:
        return [
            [msgspec.json.decode(bytes(await action(request, caller))) for request in lookups]
            for action in [*actions, uncached]
        ]

    leased: dict[str, int] = {}

    async def lease(quuid: str) -> None:
        job = await writer.store.next_job(deployment.host(quuid), deployment.now())
        assert job is not None
        leased[quuid] = job.job_id

    async def report(quuid: str, outcome: str) -> None:
        result = JobResult(outcome, "boom", 0, "", "ref", 1.0)  # type: ignore[arg-type]
        job_id = leased.pop(quuid)
        ack = await writer.store.report(deployment.host(quuid), job_id, result, deployment.now())
        assert ack.applied

    async def run(quuid: str, outcome: str) -> None:
        await lease(quuid)
        await report(quuid, outcome)

    async def retry_snapshot(quuid: str) -> None:
        view = (await deployment.harness.status(fix_id=fix_id)).view
        (record,) = [s for s in view.snapshot_records if s.host.quuid == quuid]
        await writer.store.retry_snapshot(account, fix_id, quuid, record.id, deployment.now())

    changes = [
        lambda: run("h00", "success"),  # snapshot
        lambda: run("h01", "failure"),  # snapshot fails: its fixes are not run
        lambda: run("h00", "success"),  # fix of 7
        lambda: run("h00", "failure"),  # fix of 8
        lambda: writer.store.retry_fix(account, fix_id, "h00", 8, None, deployment.now()),
        lambda: retry_snapshot("h01"),
        lambda: run("h02", "unsupported"),
        lambda: lease("h00"),  # the retried fix
        lambda: writer.store.cancel(account, fix_id, deployment.now()),
        lambda: report("h00", "success"),  # running work reports after a cancel
    ]
    for change in changes:
        before = await answers()  # both readers' caches now hold the current answers
        assert before[0] == before[1] == before[2]
        await change()
        # Within the readers' 1 s running TTL (the clock stands still): only the task's
        # version tells them their cached answers are stale.
        after = await answers()
        assert after[0] == after[1] == after[2]
        assert after != before
