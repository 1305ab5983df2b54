"""An engine on a real database (SQLite or PostgreSQL) with a manual clock, for in-process tests.

Inventory rows are written directly; hosts act through the `JobSource` port as agents would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import insert, select, update

from vulfix.fixing.agent_port import (
    AgentTimings,
    HeldPolls,
    HostIdentity,
    JobAssignment,
    JobResult,
)
from vulfix.fixing.clock import ManualClock
from vulfix.fixing.planning import FixItemRequest, FixRequest
from vulfix.fixing.services import create_fix_task
from vulfix.fixing.task_status import TaskLookup, task_status
from vulfix.fixing.task_view import TaskFigures
from vulfix.store.database import create_engine, write_transaction
from vulfix.store.fix_task_reader import SqlTaskReader
from vulfix.store.fixing_store import SqlFixingStore
from vulfix.store.inventory_tables import findings, hosts, kb_patches, vulnerabilities
from vulfix.store.tables import accounts, to_stored

TIMINGS = AgentTimings(lease_seconds=60, offline_after=90, dispatch_timeout=300)


@dataclass
class Harness:
    store: SqlFixingStore
    reader: SqlTaskReader
    clock: ManualClock
    account_id: int
    hosts: dict[str, HostIdentity] = field(default_factory=dict)
    woken: list[int] = field(default_factory=list)

    async def add_host(
        self, quuid: str, *, snapshots: bool = True, online: bool = True
    ) -> HostIdentity:
        now = to_stored(self.clock.now())
        async with write_transaction(self.store.engine) as conn:
            host_id = (
                await conn.execute(
                    insert(hosts)
                    .values(
                        account_id=self.account_id,
                        quuid=quuid,
                        uuid=f"uuid-{quuid}",
                        host_name=f"name-{quuid}",
                        host_ip="10.0.0.1",
                        instance_id=f"ins-{quuid}",
                        machine_type="CVM" if snapshots else "BM",
                        os_family="debian",
                        tags=[],
                        region_id=1,
                        disk_id=f"disk-{quuid}",
                        snapshot_supported=snapshots,
                        last_seen_at=now if online else None,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(hosts.c.id)
                )
            ).scalar_one()
        identity = HostIdentity(int(host_id), self.account_id, quuid)
        self.hosts[quuid] = identity
        return identity

    async def add_vulnerability(
        self, vul_id: int, *, on: list[str], kbs: list[int] = (), methods: list[int] = (0,)
    ) -> None:  # type: ignore[assignment]
        now = to_stored(self.clock.now())
        async with write_transaction(self.store.engine) as conn:
            await conn.execute(
                insert(vulnerabilities).values(
                    account_id=self.account_id,
                    vul_id=vul_id,
                    vul_name=f"CVE-2026-{vul_id:04d} in libexample",
                    vul_category=4,
                    level="high",
                    cve_ids=[f"CVE-2026-{vul_id:04d}"],
                    fix_methods=list(methods),
                    fix_tag=[],
                    packages=[{"Name": "libexample", "FixedVersion": "1.2.3"}],
                    service="exampled",
                    updated_at=now,
                )
            )
            for kb_id in kbs:
                await conn.execute(
                    insert(kb_patches).values(
                        account_id=self.account_id,
                        vul_id=vul_id,
                        kb_id=kb_id,
                        kb_number=f"KB{kb_id}",
                        kb_name=f"Update {kb_id}",
                        pre_kb_list=[],
                    )
                )
            for quuid in on:
                await conn.execute(
                    insert(findings).values(
                        host_id=self.hosts[quuid].host_id,
                        vul_id=vul_id,
                        account_id=self.account_id,
                        state=1,
                        updated_at=now,
                    )
                )

    async def set_online(self, quuid: str, online: bool) -> None:
        seen = to_stored(self.clock.now()) if online else None
        async with write_transaction(self.store.engine) as conn:
            await conn.execute(
                update(hosts).where(hosts.c.quuid == quuid).values(last_seen_at=seen)
            )

    async def create(
        self, items: list[tuple[int, list[str]]], save_days: int = 1, **extra: str
    ) -> int:
        request = FixRequest(
            items=tuple(FixItemRequest(vul, 0, 0, tuple(quuids)) for vul, quuids in items),
            save_days=save_days,
            **extra,  # type: ignore[arg-type]
        )
        return await create_fix_task(self.store, self.account_id, request, self.clock.now())

    async def poll(self, quuid: str) -> JobAssignment | None:
        return await self.store.next_job(self.hosts[quuid], self.clock.now())

    async def finish(
        self, quuid: str, outcome: str = "success", reason: str = "", seconds: float = 5
    ) -> JobAssignment:
        job = await self.poll(quuid)
        assert job is not None, f"{quuid} has no job"
        self.clock.advance(seconds)
        result = JobResult(
            outcome, reason, 0 if outcome == "success" else 100, "output", "ref", seconds
        )  # type: ignore[arg-type]
        ack = await self.store.report(self.hosts[quuid], job.job_id, result, self.clock.now())
        assert ack.applied
        return job

    async def drain(self, quuid: str) -> int:
        """Runs the host's jobs to completion, all successful; returns how many ran."""
        ran = 0
        while await self.poll(quuid) is not None:
            await self.finish(quuid)
            ran += 1
        return ran

    async def status(self, **lookup: int | str) -> TaskFigures:
        return await task_status(
            self.reader, self.account_id, TaskLookup(**lookup), self.clock.now()
        )  # type: ignore[arg-type]

    async def finding_state(self, quuid: str, vul_id: int) -> int:
        async with write_transaction(self.store.engine) as conn:
            query = select(findings.c.state).where(
                findings.c.host_id == self.hosts[quuid].host_id, findings.c.vul_id == vul_id
            )
            return int((await conn.execute(query)).scalar_one())


async def make_harness(
    url: str, account: str = "acme", held_polls: HeldPolls | None = None
) -> Harness:
    """A harness on the migrated database at `url`; `held_polls` as `SqlFixingStore` takes it."""
    engine = create_engine(url)
    clock = ManualClock()
    woken: list[int] = []
    store = SqlFixingStore(engine, TIMINGS, woken.extend, snapshot_quota=3, held_polls=held_polls)
    async with write_transaction(engine) as conn:
        account_id = (
            await conn.execute(
                insert(accounts)
                .values(
                    name=account,
                    app_id=1250000000 + len(account),
                    created_at=to_stored(clock.now()),
                )
                .returning(accounts.c.id)
            )
        ).scalar_one()
    return Harness(store, SqlTaskReader(engine), clock, int(account_id), woken=woken)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
