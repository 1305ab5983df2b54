"""A simulated fleet: one agent per host of an inventory file, in one process and event loop.

Each agent is one coroutine speaking the real agent API through `AgentClient`, over one
connection pool shared by the fleet: it enrols with its Quuid, long-polls
(a poll starts at least every heartbeat interval, so it doubles as the heartbeat), "runs"
each job by sleeping while heartbeating with the job's id, and reports what `simulated_jobs`
made of it. Outcomes come from a per-host generator seeded with (seed, Quuid), so a run is
reproducible whatever the scheduling; the timing jitter (start ramp, retry backoff) comes
from one fleet-wide generator instead, which keeps an agent to one generator's memory.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
from collections import Counter
from dataclasses import dataclass, field

import httpx

from vulfix.agent.client import (
    AgentApiError,
    AgentClient,
    AgentUnavailable,
    RetryPolicy,
    http_client,
)
from vulfix.agent.http_transport import AgentTransport
from vulfix.agent.simulated_hosts import InventoryHost, enroll_request
from vulfix.agent.simulated_jobs import job_kind, simulate_job
from vulfix.agent.timeline import RealTimeline, Timeline
from vulfix.agent_protocol import JobEnvelope, JobReport

# Pause after an unreachable server before an agent tries again.
UNAVAILABLE_PAUSE = 5.0
# Default pace of the start: an enrolment and its first jobs cost the simulator and the
# server ten times an idle agent's requests, and 10 000 agents arriving within 30 s saturate
# both on a small machine.
ENROLMENTS_PER_SECOND = 100
# Connections the fleet's pool may open beyond one per agent (one closing while the next
# opens).
SPARE_CONNECTIONS = 4
# A report waiting for the next job ends this long before a stopping fleet's grace does, so
# that a stop still sees it acknowledged.
REPORT_WAIT_MARGIN = 1.0


def fleet_http_client(
    base_url: str,
    agents: int,
    *,
    ca_file: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AgentTransport:
    """The way to the server for `agents` agents, shared by all: one connection pool with
    room for every agent's request at once (each has at most one in flight, a long poll
    included), and one TLS context (certifi's bundle as the official Python clients use, or
    `ca_file`), which costs ~20 ms to build."""
    size = agents + SPARE_CONNECTIONS
    return http_client(base_url, ca_file=ca_file, max_connections=size, transport=transport)


@dataclass(frozen=True, slots=True)
class FleetOptions:
    fail_rate: float = 0.0
    snapshot_fail_rate: float = 0.0
    # Simulated work runs this many times faster than nominal.
    speed: float = 1.0
    # Stop taking jobs after this many seconds (jobs under way still finish and report).
    duration: float | None = None
    seed: int | None = None
    # Be heard from at least this often (the server's interval applies when it is shorter).
    heartbeat_interval: float | None = None
    # On stop, reports already on their way (resends included) get this long to be
    # acknowledged: a report the server applied but never answered is otherwise left to the
    # server's lease sweep, and the summary would miss it.
    stop_grace: float = 10.0
    # Long-poll wait; None takes the server's. 0 polls without waiting (virtual-time tests).
    poll_wait: float | None = None
    # Empty polls are at least this far apart, whatever the server's wait.
    idle_poll_interval: float = 1.0
    # Enrolments are spread over this many seconds; None scales with the fleet.
    ramp_up: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class FleetSummary:
    # Hosts enrolled (re-enrolments after a 401 are not counted again).
    enrolled: int = 0
    enrol_refused: int = 0
    # (kind, outcome) of every report the server applied.
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)
    # Reports acknowledged as already applied, refused (e.g. an expired job), or given up on.
    duplicates: int = 0
    refused: int = 0
    unreported: int = 0
    # Times an agent found the server unreachable after its client's retries.
    unavailable: int = 0


class SimulatedAgent:
    def __init__(
        self,
        host: InventoryHost,
        client: AgentClient,
        *,
        enroll_token: str,
        seed: int,
        options: FleetOptions,
        timeline: Timeline,
        deadline: float,
        start_delay: float,
        summary: FleetSummary,
        stop: asyncio.Event,
    ) -> None:
        self._facts = enroll_request(host, enroll_token)
        self._client = client
        self._outcomes = random.Random(f"{seed}/{host.quuid}")
        self._options = options
        self._timeline = timeline
        self._deadline = deadline
        self._start_delay = start_delay
        self._summary = summary
        self._heartbeat_interval = 0.0
        self._poll_wait = 0.0
        self._next_heartbeat = 0.0
        # Reports the server never acknowledged, resent when the job comes round again.
        self._unsent: dict[int, JobReport] = {}
        self._stop = stop
        # True while a report is on its way: a stopping fleet lets it finish.
        self.reporting = False

    async def run(self) -> None:
        await self._timeline.sleep(self._start_delay)
        if not await self._enroll():
            return
        while self._timeline.now() < self._deadline and not self._stop.is_set():
            try:
                await self._step()
            except AgentUnavailable:
                self._summary.unavailable += 1
                await self._timeline.sleep(UNAVAILABLE_PAUSE)
            except AgentApiError as exc:
                if exc.status != 401 or not await self._enroll():
                    raise

    async def _enroll(self) -> bool:
        """Enrols (again, after a 401); False when the server refuses this host for good."""
        while True:
            try:
                enrolled = await self._client.enroll(self._facts)
            except AgentUnavailable:
                self._summary.unavailable += 1
                if self._timeline.now() >= self._deadline:
                    return False
                await self._timeline.sleep(UNAVAILABLE_PAUSE)
                continue
            except AgentApiError:
                self._summary.enrol_refused += 1
                return False
            if not self._heartbeat_interval:  # the first enrolment, not a renewal
                self._summary.enrolled += 1
            configured = self._options.heartbeat_interval or math.inf
            self._heartbeat_interval = min(enrolled.heartbeat_interval, configured)
            self._poll_wait = enrolled.poll_wait
            if self._options.poll_wait is not None:
                self._poll_wait = self._options.poll_wait
            self._next_heartbeat = self._timeline.now() + self._heartbeat_interval
            return True

    async def _heartbeat(self, running_job_id: int) -> None:
        self._next_heartbeat = self._timeline.now() + self._heartbeat_interval
        await self._client.heartbeat(running_job_id)

    async def _step(self) -> None:
        """One poll, and the jobs it brings. An idle agent is heard from through its polls,
        which start at least every heartbeat interval; a heartbeat of its own would tell the
        server nothing more and add a third of the fleet's requests."""
        asked = self._timeline.now()
        self._next_heartbeat = asked + self._heartbeat_interval
        job = await self._client.poll(self._wait(asked))
        while job is not None:  # each report brings the next job while there is one
            report = self._unsent.pop(job.job_id, None)
            if report is None:
                report = await self._run(job)
            asked = self._timeline.now()
            wait = self._report_wait(asked)
            job = await self._report(job, report, wait)
            if job is None and not wait:
                return  # nothing was waited for: the next step polls at once
        # The last answer was empty after a wait, as a poll's can be.
        idle = self._options.idle_poll_interval - (self._timeline.now() - asked)
        if idle > 0:
            until = min(self._deadline, self._next_heartbeat) - self._timeline.now()
            await self._timeline.sleep(max(0.0, min(idle, until)))

    def _wait(self, now: float) -> float:
        """How long a poll waits on the server for a job."""
        return max(0.0, min(self._poll_wait, self._heartbeat_interval, self._deadline - now))

    def _report_wait(self, now: float) -> float:
        """How long a report waits for the host's next job: as a poll would, but short enough
        for a stopping fleet to still have it acknowledged within `stop_grace`."""
        if not self._taking_jobs():
            return 0.0
        return max(0.0, min(self._wait(now), self._options.stop_grace - REPORT_WAIT_MARGIN))

    async def _run(self, job: JobEnvelope) -> JobReport:
        run = simulate_job(
            job,
            os_family=self._facts.os_family,
            snapshot_supported=self._facts.snapshot_supported,
            rng=self._outcomes,
            fail_rate=self._options.fail_rate,
            snapshot_fail_rate=self._options.snapshot_fail_rate,
            speed=self._options.speed,
        )
        remaining = run.seconds
        while remaining > 0:
            step = min(remaining, max(0.0, self._next_heartbeat - self._timeline.now()))
            await self._timeline.sleep(step)
            remaining -= step
            if self._timeline.now() >= self._next_heartbeat:
                try:
                    await self._heartbeat(job.job_id)  # is heard from, and keeps the lease
                except AgentUnavailable:
                    self._summary.unavailable += 1
        return run.report

    def _taking_jobs(self) -> bool:
        return not self._stop.is_set() and self._timeline.now() < self._deadline

    async def _report(self, job: JobEnvelope, report: JobReport, wait: float) -> JobEnvelope | None:
        """Delivers the report; returns the next job it brought, waiting up to `wait` seconds
        on the server for one, if the agent still takes jobs. (One brought after a stop stays
        leased to the host, as an answered poll's would.)"""
        self.reporting = True
        try:
            taking = self._taking_jobs()
            ack = await self._client.report(
                job.job_id, report, take_next=taking, wait=wait if taking else 0.0
            )
        except asyncio.CancelledError:  # stopped, grace spent: given up on
            self._summary.unreported += 1
            raise
        except AgentUnavailable:
            self._summary.unreported += 1
            self._unsent[job.job_id] = report
            raise
        except AgentApiError as exc:
            if exc.status == 401:
                self._unsent[job.job_id] = report
                raise
            self._summary.refused += 1
            return None
        finally:
            self.reporting = False
        if ack.applied:
            self._summary.jobs[job_kind(job), report.outcome] += 1
        else:
            self._summary.duplicates += 1
        self._next_heartbeat = self._timeline.now() + self._heartbeat_interval  # it was heard
        return ack.next_job if self._taking_jobs() else None


async def run_fleet(
    hosts: list[InventoryHost],
    http: AgentTransport,
    enroll_token: str,
    options: FleetOptions,
    *,
    timeline: Timeline | None = None,
    stop: asyncio.Event | None = None,
) -> FleetSummary:
    """Runs an agent per host, all over `http` (see `fleet_http_client`), until
    `options.duration` has passed or `stop` is set."""
    timeline = timeline or RealTimeline()
    seed = options.seed if options.seed is not None else secrets.randbits(32)
    jitter = random.Random(f"{seed}/timing")
    deadline = timeline.now() + (options.duration if options.duration is not None else math.inf)
    ramp_up = options.ramp_up if options.ramp_up is not None else len(hosts) / ENROLMENTS_PER_SECOND
    summary = FleetSummary()
    stop = stop if stop is not None else asyncio.Event()
    agents = [
        SimulatedAgent(
            host,
            AgentClient(http, retry=options.retry, sleep=timeline.sleep, rng=jitter),
            enroll_token=enroll_token,
            seed=seed,
            options=options,
            timeline=timeline,
            deadline=deadline,
            start_delay=jitter.uniform(0, ramp_up),
            summary=summary,
            stop=stop,
        )
        for index, host in enumerate(hosts)
    ]
    watcher: asyncio.Task[None] | None = None
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(agent.run()) for agent in agents]
            for task in tasks:
                timeline.enlist(task)
            watcher = asyncio.create_task(
                _stop_when_set(stop, list(zip(agents, tasks, strict=True)), options.stop_grace)
            )
    finally:
        if watcher is not None:
            watcher.cancel()
    return summary


async def _stop_when_set(
    stop: asyncio.Event, running: list[tuple[SimulatedAgent, asyncio.Task[None]]], grace: float
) -> None:
    """Once `stop` is set, cancels every agent but those sending a report, which get up to
    `grace` seconds to have it acknowledged (they take no job after it)."""
    await stop.wait()
    reporting = []
    for agent, task in running:
        if agent.reporting:
            reporting.append(task)
        else:
            task.cancel()
    if reporting:
        _, late = await asyncio.wait(reporting, timeout=grace)
        for task in late:
            task.cancel()
