"""What the agent API needs from the domain: hosts that enrol, and the jobs they run.

Plain dataclasses and protocols; the HTTP layer (`vulfix.agent_api`) maps them to the wire
format of `vulfix.agent_protocol`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

JobKind = Literal["snapshot", "fix", "snapshot_delete"]
Outcome = Literal["success", "failure", "unsupported"]


@dataclass(frozen=True, slots=True)
class HostFacts:
    quuid: str | None
    host_name: str
    host_ip: str
    os_family: str
    snapshot_supported: bool
    machine_type: str | None = None
    instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class Enrollment:
    host_id: int
    account_id: int
    quuid: str
    host_token: str


@dataclass(frozen=True, slots=True)
class HostIdentity:
    host_id: int
    account_id: int
    quuid: str


@dataclass(frozen=True, slots=True)
class PackageTarget:
    name: str
    fixed_version: str


@dataclass(frozen=True, slots=True)
class SnapshotWork:
    snapshot_name: str
    save_days: int


@dataclass(frozen=True, slots=True)
class FixWork:
    vul_id: int
    vul_name: str
    fix_method: int
    packages: tuple[PackageTarget, ...]
    service: str
    kb_id: int
    kb_number: str
    kb_name: str
    pre_kb_list: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SnapshotDeleteWork:
    snapshot_id: str
    provider_ref: str


@dataclass(frozen=True, slots=True)
class JobAssignment:
    job_id: int
    fix_id: int
    lease_seconds: float
    work: SnapshotWork | FixWork | SnapshotDeleteWork


@dataclass(frozen=True, slots=True)
class JobResult:
    outcome: Outcome
    reason: str = ""
    exit_code: int | None = None
    output_tail: str = ""
    provider_ref: str = ""
    duration_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    applied: bool
    detail: str = ""


class EnrollmentRefused(Exception):
    """Unknown, expired or revoked enrolment token, or a Quuid claimed by another host."""


class UnknownJob(Exception):
    """No such job for this host (another host's job looks exactly the same)."""


class HostRegistry(Protocol):
    async def enroll(self, token: str, facts: HostFacts, now: datetime) -> Enrollment: ...

    async def authenticate(self, host_token: str) -> HostIdentity | None:
        """The host `host_token` names, or None; a token authenticated a moment ago is
        answered without reading the store."""
        ...

    async def touch(self, host: HostIdentity, now: datetime) -> None:
        """Record that the host's agent was seen (drives AgentStatus)."""
        ...


class JobSource(Protocol):
    async def next_job(
        self, host: HostIdentity, now: datetime, *, woken: bool = False
    ) -> JobAssignment | None:
        """The host's leased job again, or its next queued job, now leased; None if idle.
        `woken`: the host was just told a job is queued for it, so it is unlikely to be idle
        and the store may skip what keeps an idle host's poll cheap."""
        ...

    async def extend_lease(self, host: HostIdentity, job_id: int, now: datetime) -> bool: ...

    async def report(
        self, host: HostIdentity, job_id: int, result: JobResult, now: datetime
    ) -> ReportOutcome:
        """Apply a job's result once; raises UnknownJob for a job that is not this host's."""
        ...

    async def report_and_take_next(
        self, host: HostIdentity, job_id: int, result: JobResult, now: datetime
    ) -> tuple[ReportOutcome, JobAssignment | None]:
        """`report`, then the host's next job as `next_job` would give it, in one step: the
        agent takes its next job from the answer, so its long poll is not woken for it."""
        ...


class HeldPolls(Protocol):
    """The long polls this process holds, to which a job leased for them can be given directly:
    such a poll answers without asking the store for its job."""

    def waiting(self, host_ids: Iterable[int]) -> set[int]:
        """The hosts among `host_ids` with a poll held here now."""
        ...

    def hand_over(self, jobs: Mapping[int, JobAssignment]) -> None:
        """Wakes each host's poll with its job (by host id), leased already. A host whose poll
        has gone meanwhile is notified instead: its next poll finds the leased job and gets
        it again."""
        ...


class JobNotifier(HeldPolls, Protocol):
    """Wakes long-polls when a host gets work, in one process or across replicas."""

    def notify(self, host_ids: list[int]) -> None: ...

    async def wait(self, host_id: int, timeout: float) -> JobAssignment | bool:  # noqa: ASYNC109
        """The job handed over to the host's poll (`hand_over`); True when woken by a
        notification (the poll asks the store); False when `timeout` ran out."""
        ...

    def release_all(self) -> None:
        """Ends every held poll now and every later wait at once: the server is stopping."""
        ...


@dataclass
class AgentTimings:
    """What agents are told, and how long the engine waits for them."""

    heartbeat_interval: float = 30.0
    poll_wait: float = 25.0
    lease_seconds: float = 900.0
    # An agent unseen for this long is offline (AgentStatus 0, IsSupportAutoFix 2).
    offline_after: float = 90.0
    # A queued job no agent picks up within this long fails its record.
    dispatch_timeout: float = 600.0
