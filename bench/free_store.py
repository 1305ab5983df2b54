"""The agent routes over a store that costs nothing, as `vulfix serve` mounts them: what the
agent API's own HTTP and Python cost, with the engine taken out (`bench/agent_http.py` over
real sockets, `bench/agent_routes.py` in-process)."""

from __future__ import annotations

from datetime import datetime

from starlette.applications import Starlette
from starlette.routing import Mount

from vulfix.agent_api import MemoryJobNotifier
from vulfix.agent_api.dispatch import AgentDispatch
from vulfix.agent_api.lane import AgentLane
from vulfix.agent_api.routes import agent_routes
from vulfix.agent_protocol import AGENT_API_PATH
from vulfix.fixing.agent_port import (
    AgentTimings,
    Enrollment,
    HostFacts,
    HostIdentity,
    JobAssignment,
    JobResult,
    ReportOutcome,
    SnapshotWork,
)
from vulfix.fixing.clock import SystemClock


class Registry:
    """Every bearer token `h<N>` is host N; last-seen times cost nothing."""

    async def authenticate(self, host_token: str) -> HostIdentity | None:
        return HostIdentity(int(host_token[1:]), 1, host_token)

    async def touch(self, host: HostIdentity, now: datetime) -> None:
        return None

    async def enroll(self, token: str, facts: HostFacts, now: datetime) -> Enrollment:
        raise NotImplementedError


class Jobs:
    """A next job for every report, at once."""

    def __init__(self) -> None:
        self.issued = 0

    async def next_job(
        self, host: HostIdentity, now: datetime, *, woken: bool = False
    ) -> JobAssignment | None:
        self.issued += 1
        return JobAssignment(self.issued, 1, 900.0, SnapshotWork("bench", 1))

    async def report(
        self, host: HostIdentity, job_id: int, result: JobResult, now: datetime
    ) -> ReportOutcome:
        return ReportOutcome(True)

    async def report_and_take_next(
        self, host: HostIdentity, job_id: int, result: JobResult, now: datetime
    ) -> tuple[ReportOutcome, JobAssignment | None]:
        return ReportOutcome(True), await self.next_job(host, now)

    async def extend_lease(self, host: HostIdentity, job_id: int, now: datetime) -> bool:
        return True


def free_store_app() -> AgentDispatch:
    """The agent routes behind `AgentDispatch`, the lane and the notifier as `vulfix serve`
    has them, over `Registry` and `Jobs`."""
    lane = AgentLane(64)
    routes = agent_routes(
        Registry(), Jobs(), MemoryJobNotifier(), AgentTimings(), SystemClock(), lane
    )
    return AgentDispatch(
        routes, AGENT_API_PATH, Starlette(routes=[Mount(AGENT_API_PATH, routes=routes)])
    )
