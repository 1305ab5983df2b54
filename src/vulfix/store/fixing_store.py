"""The engine's storage: each operation one transaction; hosts given work are woken after
the commit (a woken agent must find its job)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vulfix.fixing.agent_port import (
    AgentTimings,
    HeldPolls,
    HostIdentity,
    JobAssignment,
    JobResult,
    ReportOutcome,
    SnapshotWork,
)
from vulfix.fixing.host_log import HostLog
from vulfix.fixing.planning import FixRequest, Planner
from vulfix.store import (
    change_freeze,
    engine_sweeps,
    fix_task_controls,
    fix_task_writer,
    job_queue,
    job_reports,
    record_updates,
)
from vulfix.store.database import read_transaction, write_transaction
from vulfix.store.group_commit import GroupCommit
from vulfix.store.job_tally import JobCount, JobTally
from vulfix.store.row_locks import is_serialised, lock_account
from vulfix.store.tables import to_stored


@dataclass(frozen=True, slots=True)
class SweepFigures:
    leases_expired: int
    dispatch_timeouts: int
    hosts_woken: int


class SqlFixingStore:
    def __init__(
        self,
        engine: AsyncEngine,
        timings: AgentTimings,
        notify: Callable[[list[int]], None],
        snapshot_quota: int = 64,
        held_polls: HeldPolls | None = None,
    ) -> None:
        self.engine = engine
        self.timings = timings
        self.notify = notify
        self.held_polls = held_polls
        self.snapshot_quota = snapshot_quota
        self._lease = timedelta(seconds=timings.lease_seconds)
        self._offline_after = timedelta(seconds=timings.offline_after)
        self._job_tally = JobTally()
        # Agents' writes: many in one transaction on SQLite, each task's version bumped once.
        self.agent_writes = GroupCommit(engine, scope=record_updates.versions_bumped_once)

    async def create_task(
        self, account_id: int, request: FixRequest, planner: Planner, now: datetime
    ) -> int:
        """Loads the facts, plans (the domain's `planner`) and writes, in one write transaction
        holding the account's lock, so two requests (on any replicas) can never both claim the
        same pending finding."""
        async with write_transaction(self.engine) as conn:
            await lock_account(conn, account_id)
            await change_freeze.refuse_if_frozen(conn, account_id)
            facts = await fix_task_writer.load_facts(
                conn, account_id, request, now, self._offline_after
            )
            plan = planner(*facts)
            leasing = fix_task_writer.NO_LEASING
            if self.held_polls is not None:
                waiting = self.held_polls.waiting(host.host_id for host in plan.hosts)
                leasing = fix_task_writer.Leasing(waiting, to_stored(now + self._lease))
            written = await fix_task_writer.write_plan(conn, account_id, plan, now, leasing)
        if self.held_polls is not None and written.leased:
            # A task's start wakes a whole fleet's held polls at once. Each is handed its
            # snapshot job, leased with the task, rather than asking the store for it: the
            # claims the polls would make are the bulk of a start's work.
            work = SnapshotWork(plan.snapshot_name, plan.save_days)
            lease_seconds = self.timings.lease_seconds
            self.held_polls.hand_over(
                {
                    host_id: JobAssignment(job_id, written.fix_id, lease_seconds, work)
                    for host_id, job_id in written.leased.items()
                }
            )
        self.notify([host for host in written.started if host not in written.leased])
        return written.fix_id

    async def retry_snapshot(
        self, account_id: int, fix_id: int, quuid: str, record_id: int, now: datetime
    ) -> None:
        async with write_transaction(self.engine) as conn:
            host_id = await fix_task_controls.retry_snapshot(
                conn, account_id, fix_id, quuid, record_id, now, self.snapshot_quota
            )
            woken = await engine_sweeps.settle(conn, account_id, [], [host_id], now)
        self.notify(woken)

    async def retry_fix(
        self,
        account_id: int,
        fix_id: int,
        quuid: str,
        vul_id: int | None,
        kb_id: int | None,
        now: datetime,
    ) -> None:
        async with write_transaction(self.engine) as conn:
            host_id = await fix_task_controls.retry_fix(
                conn, account_id, fix_id, quuid, vul_id, kb_id, now, self._offline_after
            )
            woken = await engine_sweeps.settle(conn, account_id, [], [host_id], now)
        self.notify(woken)

    async def cancel(self, account_id: int, fix_id: int, now: datetime) -> None:
        async with write_transaction(self.engine) as conn:
            withdrawn = await fix_task_controls.cancel(conn, account_id, fix_id, now)
            woken = await engine_sweeps.settle(conn, account_id, [], withdrawn, now)
        self.notify(woken)

    async def host_log(self, account_id: int, fix_id: int, quuid: str, vul_id: int) -> HostLog:
        async with read_transaction(self.engine) as conn:
            return await fix_task_controls.host_log(conn, account_id, fix_id, quuid, vul_id)

    # The agent side (`JobSource`).

    async def next_job(
        self, host: HostIdentity, now: datetime, *, woken: bool = False
    ) -> JobAssignment | None:
        if not woken and not await job_queue.has_active_job(self.engine, host.host_id):
            return None  # an idle host's poll, the common case: one read, no write lock
        assignment, replaced = await self.agent_writes.run(
            lambda conn: self._claim(conn, host, now)
        )
        if replaced:  # a stale job was replaced: the host's long poll picks the new one up
            self.notify(replaced)
        return assignment

    async def _claim(
        self, conn: AsyncConnection, host: HostIdentity, now: datetime
    ) -> tuple[JobAssignment | None, list[int]]:
        """The host's job, leased; and hosts to wake once committed."""
        leased, woken = await job_queue.claim(conn, host.host_id, self._lease, now)
        if leased is None:
            return None, woken
        return await self._assignment(conn, host, leased), woken

    async def _assignment(
        self, conn: AsyncConnection, host: HostIdentity, leased: job_queue.Leased
    ) -> JobAssignment:
        work = await job_reports.work_of(conn, leased.job, leased.record)
        fix_id = leased.job.fix_id or 0
        return JobAssignment(leased.job_id, int(fix_id), self.timings.lease_seconds, work)

    async def extend_lease(self, host: HostIdentity, job_id: int, now: datetime) -> bool:
        return await self.agent_writes.run(
            lambda conn: job_queue.extend_lease(conn, host.host_id, job_id, self._lease, now)
        )

    async def report(
        self, host: HostIdentity, job_id: int, result: JobResult, now: datetime
    ) -> ReportOutcome:
        outcome, woken = await self.agent_writes.run(
            lambda conn: self._apply_report(conn, host, job_id, result, now)
        )
        self.notify(woken)
        return outcome

    async def report_and_take_next(
        self, host: HostIdentity, job_id: int, result: JobResult, now: datetime
    ) -> tuple[ReportOutcome, JobAssignment | None]:
        async def report_and_claim(
            conn: AsyncConnection,
        ) -> tuple[ReportOutcome, JobAssignment | None, list[int]]:
            applied = await job_reports.apply_report(conn, host, job_id, result, now)
            if not applied.outcome.applied:  # a resend: the host may hold a job already
                held, woken = await self._claim(conn, host, now)
                return applied.outcome, held, woken
            # The report ended the host's one job: it is idle, and its agent waits for the next.
            if is_serialised(conn):
                next_job, woken = await self._lease_next(conn, host, applied.finished_tasks, now)
            else:
                next_job, woken = await self._settle_and_claim(
                    conn, host, applied.finished_tasks, now
                )
            return applied.outcome, next_job, woken

        outcome, next_job, woken = await self.agent_writes.run(report_and_claim)
        # The agent takes its next job from this answer: waking its poll would only make
        # that poll ask twice.
        self.notify([h for h in woken if h != host.host_id])
        return outcome, next_job

    async def _lease_next(
        self, conn: AsyncConnection, host: HostIdentity, finished_tasks: list[int], now: datetime
    ) -> tuple[JobAssignment | None, list[int]]:
        """One writer at a time: the host's next job is leased as it is queued."""
        admitted = await engine_sweeps.admit(conn, finished_tasks, now)
        admitted.discard(host.host_id)
        woken = await job_queue.schedule_hosts(conn, host.account_id, admitted, now)
        leased = await job_queue.lease_next_job(
            conn, host.account_id, host.host_id, self._lease, now
        )
        if leased is None:
            return None, woken
        return await self._assignment(conn, host, leased), woken

    async def _settle_and_claim(
        self, conn: AsyncConnection, host: HostIdentity, finished_tasks: list[int], now: datetime
    ) -> tuple[JobAssignment | None, list[int]]:
        """Replicas: the host's next job is queued, then claimed with the claim's checks."""
        woken = await engine_sweeps.settle(
            conn, host.account_id, finished_tasks, [host.host_id], now
        )
        if host.host_id not in woken:
            return None, woken
        next_job, replaced = await self._claim(conn, host, now)
        return next_job, woken + replaced

    async def _apply_report(
        self,
        conn: AsyncConnection,
        host: HostIdentity,
        job_id: int,
        result: JobResult,
        now: datetime,
    ) -> tuple[ReportOutcome, list[int]]:
        applied = await job_reports.apply_report(conn, host, job_id, result, now)
        if not applied.outcome.applied:
            return applied.outcome, []
        woken = await engine_sweeps.settle(
            conn, host.account_id, applied.finished_tasks, [host.host_id], now
        )
        return applied.outcome, woken

    async def job_counts(self, now: datetime) -> list[JobCount]:
        """Jobs by (kind, state, outcome), read incrementally (`job_tally`)."""
        async with read_transaction(self.engine) as conn:
            return await self._job_tally.counts(conn, now)

    async def sweep(self, now: datetime) -> SweepFigures:
        async with write_transaction(self.engine) as conn:
            expired, woken_a = await engine_sweeps.expire_leases(
                conn, now, self.timings.lease_seconds
            )
        async with write_transaction(self.engine) as conn:
            timed_out, woken_b = await engine_sweeps.time_out_dispatch(
                conn, now, self.timings.dispatch_timeout
            )
        async with write_transaction(self.engine) as conn:
            woken_c = await engine_sweeps.queue_snapshot_deletes(conn, now)
        woken = woken_a + woken_b + woken_c
        self.notify(woken)
        return SweepFigures(expired, timed_out, len(woken))
