"""An in-memory `JobSource` with the port's semantics, for driving the agent API in tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vulfix.fixing.agent_port import (
    FixWork,
    HostIdentity,
    JobAssignment,
    JobResult,
    PackageTarget,
    ReportOutcome,
    SnapshotDeleteWork,
    SnapshotWork,
    UnknownJob,
)

Work = SnapshotWork | FixWork | SnapshotDeleteWork


def fix_work(vul_id: int = 101, package: str = "openssl") -> FixWork:
    return FixWork(
        vul_id=vul_id,
        vul_name=f"{package} vulnerability",
        fix_method=0,
        packages=(PackageTarget(package, "3.0.13-1"),),
        service="",
        kb_id=0,
        kb_number="",
        kb_name="",
        pre_kb_list=(),
    )


@dataclass
class FakeJobSource:
    """Jobs queued per Quuid; one leased at a time per host; each report applied once."""

    lease_seconds: float = 900.0
    queued: dict[str, list[JobAssignment]] = field(default_factory=dict)
    leased: dict[int, tuple[str, JobAssignment]] = field(default_factory=dict)
    results: dict[int, JobResult] = field(default_factory=dict)
    report_calls: int = 0
    next_job_calls: int = 0
    woken_calls: int = 0
    extended: list[int] = field(default_factory=list)
    _next_id: int = 1

    def add(self, quuid: str, work: Work, fix_id: int = 7) -> JobAssignment:
        job = JobAssignment(self._next_id, fix_id, self.lease_seconds, work)
        self._next_id += 1
        self.queued.setdefault(quuid, []).append(job)
        return job

    def _held_by(self, host: HostIdentity) -> JobAssignment | None:
        for job_id, (quuid, job) in self.leased.items():
            if quuid == host.quuid and job_id not in self.results:
                return job
        return None

    async def next_job(
        self, host: HostIdentity, now: datetime, *, woken: bool = False
    ) -> JobAssignment | None:
        self.next_job_calls += 1
        self.woken_calls += woken
        held = self._held_by(host)
        if held is not None:
            return held
        waiting = self.queued.get(host.quuid)
        if not waiting:
            return None
        job = waiting.pop(0)
        self.leased[job.job_id] = (host.quuid, job)
        return job

    async def extend_lease(self, host: HostIdentity, job_id: int, now: datetime) -> bool:
        held = self._held_by(host)
        if held is None or held.job_id != job_id:
            return False
        self.extended.append(job_id)
        return True

    async def report(
        self,
        host: HostIdentity,
        job_id: int,
        result: JobResult,
        now: datetime,
    ) -> ReportOutcome:
        self.report_calls += 1
        leased = self.leased.get(job_id)
        if leased is None or leased[0] != host.quuid:
            raise UnknownJob(job_id)
        if job_id in self.results:
            return ReportOutcome(applied=False, detail="already reported")
        self.results[job_id] = result
        return ReportOutcome(applied=True)

    async def report_and_take_next(
        self, host: HostIdentity, job_id: int, result: JobResult, now: datetime
    ) -> tuple[ReportOutcome, JobAssignment | None]:
        outcome = await self.report(host, job_id, result, now)
        return outcome, await self.next_job(host, now)
