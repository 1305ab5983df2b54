"""The host agent's main loop: enrol once, then poll, run one job at a time, and report.

Durability comes from the state directory (`state_files`): the identity survives restarts,
a job is journalled as running before it starts, and its report is journalled before it is
sent. So after a crash the agent resends every report the server has not acknowledged, and
a job it was in the middle of is reported as interrupted instead of being run again blind
(a half-finished package upgrade or snapshot is for an operator to look at; RetryVulFix
runs it again on purpose). A job handed out again after its report was lost gets the
journalled report, never a second run.

The server being away (restarts, network) is waited out with capped, jittered backoff;
only a refusal that no retry can change (a revoked enrolment token) stops the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from vulfix.agent.client import AgentApiError, AgentClient, AgentUnavailable
from vulfix.agent.config import AgentConfig
from vulfix.agent.host_facts import enroll_request
from vulfix.agent.state_files import Identity, IdentityStore, Journal
from vulfix.agent_protocol import JobEnvelope, JobReport

log = logging.getLogger("vulfix.agent")

INTERRUPTED_REASON = (
    "the agent stopped while this job was running (crash, reboot or kill); its outcome is "
    "unknown, so it was not run again: check the host, then retry"
)
# Backoff while the server is unreachable, on top of the client's own retries.
OUTAGE_PAUSE = (2.0, 60.0)

Answer = TypeVar("Answer")


class EnrollmentFailed(Exception):
    """The server refused this host's enrolment; the message says why."""


class JobWork(Protocol):
    """What the agent does with a job (`vulfix.agent.work.HostWork` on a real host)."""

    @property
    def snapshot_supported(self) -> bool: ...

    async def run(self, job: JobEnvelope) -> JobReport: ...


class HostAgent:
    def __init__(
        self,
        config: AgentConfig,
        client: AgentClient,
        work: JobWork,
        *,
        os_family: str,
        identities: IdentityStore,
        journal: Journal,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._client = client
        self._work = work
        self._os_family = os_family
        self._identities = identities
        self._journal = journal
        self._rng = rng or random.Random()
        self._outages = 0
        self._rejected_token = ""
        self.identity: Identity | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Serve jobs until `stop` is set; a job under way is finished and reported first."""
        self._settle_interrupted_jobs()
        await self._until_served(self._send_unacknowledged, stop)
        while not stop.is_set():
            job = await self._until_served(lambda: self._poll(stop), stop)
            while job is not None:  # each report brings the next job while there is one
                job = await self._handle(job, stop)

    async def _until_served(
        self, call: Callable[[], Awaitable[Answer]], stop: asyncio.Event
    ) -> Answer | None:
        """`call()` once enrolled, repeated through outages until it answers or the agent is
        stopped; a 401 (the server forgot this host's token) enrols again and tries again."""
        while not stop.is_set():
            try:
                await self._ensure_enrolled()
                answer = await call()
            except AgentUnavailable as exc:
                await self._outage(exc, stop)
                continue
            except AgentApiError as exc:
                if exc.status != 401 or self.identity is None:
                    raise
                log.warning("the server no longer knows this host's token; enrolling again")
                self._rejected_token = self.identity.host_token
                self.identity = None
                continue
            self._outages = 0
            return answer
        return None

    async def _outage(self, exc: Exception, stop: asyncio.Event) -> None:
        low, high = OUTAGE_PAUSE
        pause = min(high, low * 2.0**self._outages)
        pause = pause / 2 + self._rng.uniform(0, pause / 2)
        self._outages += 1
        log.warning("server unreachable (%s); trying again in %.0f s", exc, pause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)

    async def _ensure_enrolled(self) -> Identity:
        if self.identity is None:
            saved = self._identities.load()
            usable = saved is not None and saved.host_token != self._rejected_token
            if saved is not None and usable and saved.server == self._config.server:
                self._client.host_token = saved.host_token
                self.identity = saved
                log.info("resuming as host %s", saved.quuid)
                return saved
            await self._enroll(saved.quuid if saved is not None else self._config.quuid)
        assert self.identity is not None
        return self.identity

    async def _enroll(self, quuid: str | None) -> None:
        if not self._config.enroll_token:
            raise EnrollmentFailed("not enrolled yet: pass --enroll-token (vulfix enroll-token)")
        request = enroll_request(
            self._config,
            quuid=quuid,
            family=self._os_family,
            snapshot_supported=self._work.snapshot_supported,
        )
        try:
            enrolled = await self._client.enroll(request)
        except AgentApiError as exc:
            if exc.status == 401 or exc.status >= 500:
                raise
            raise EnrollmentFailed(f"the server refused the enrolment: {exc.message}") from exc
        self.identity = Identity(
            server=self._config.server,
            quuid=enrolled.quuid,
            host_token=enrolled.host_token,
            heartbeat_interval=enrolled.heartbeat_interval,
            poll_wait=enrolled.poll_wait,
        )
        self._identities.save(self.identity)
        log.info("enrolled as host %s", enrolled.quuid)

    def _settle_interrupted_jobs(self) -> None:
        for job_id in self._journal.interrupted():
            log.warning("job %d was interrupted by the agent's own stop; reporting it", job_id)
            self._journal.finished(job_id, JobReport(outcome="failure", reason=INTERRUPTED_REASON))

    async def _send_unacknowledged(self) -> None:
        for job_id, report in self._journal.unacknowledged():
            await self._deliver(job_id, report)

    async def _poll(self, stop: asyncio.Event) -> JobEnvelope | None:
        """A long-poll that a stop cuts short. A job handed out in a cut answer is not lost:
        the server keeps it leased to this host and hands it out again at the next poll."""
        assert self.identity is not None  # `_until_served` enrolled first
        poll = asyncio.ensure_future(self._client.poll(self.identity.poll_wait))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (poll, stopping):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await pending
        return poll.result() if not poll.cancelled() else None

    async def _handle(self, job: JobEnvelope, stop: asyncio.Event) -> JobEnvelope | None:
        """Runs the job (or finds its report in the journal) and delivers the report; returns
        the next job the report's answer brought, unless the agent is stopping."""
        entry = self._journal.entry(job.job_id)
        if entry is not None and entry.report is not None:
            log.info("job %d was finished before; resending its report", job.job_id)
            report = entry.report
        else:
            self._journal.started(job.job_id)
            report = await self._run(job)
            self._journal.finished(job.job_id, report)
        # Delivered even when a stop was asked for meanwhile: it is already journalled, but
        # the server would otherwise wait for the lease to expire. A next job is asked for only
        # while running; one that arrives after a stop stays leased to this host, and the
        # server hands it out again at the next poll.
        next_job = await self._until_served(
            lambda: self._deliver(job.job_id, report, take_next=not stop.is_set()),
            asyncio.Event(),
        )
        return None if stop.is_set() else next_job

    async def _run(self, job: JobEnvelope) -> JobReport:
        log.info("running job %d (%s)", job.job_id, type(job.work).__name__)
        started = time.monotonic()
        beats = asyncio.create_task(self._heartbeats(job.job_id))
        try:
            report = await self._work.run(job)
        finally:
            beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beats
        log.info(
            "job %d: %s in %.1f s%s",
            job.job_id,
            report.outcome,
            time.monotonic() - started,
            f" ({report.reason})" if report.reason else "",
        )
        return report

    async def _heartbeats(self, job_id: int) -> None:
        """Keeps the job's lease while it runs; a missed beat is not fatal (the next may land)."""
        while True:
            assert self.identity is not None  # a job is only run once enrolled
            await asyncio.sleep(self.identity.heartbeat_interval)
            try:
                await self._client.heartbeat(job_id)
            except (AgentUnavailable, AgentApiError) as exc:
                log.warning("heartbeat for job %d failed: %s", job_id, exc)

    async def _deliver(
        self, job_id: int, report: JobReport, *, take_next: bool = False
    ) -> JobEnvelope | None:
        next_job = None
        try:
            ack = await self._client.report(job_id, report, take_next=take_next)
        except AgentApiError as exc:
            if exc.status == 401:
                raise
            # The server will never take it (the job was cancelled or is unknown): keeping it
            # would only resend it forever.
            log.warning("the server refused the report of job %d: %s", job_id, exc.message)
        else:
            log.info("job %d reported%s", job_id, "" if ack.applied else " (already applied)")
            next_job = ack.next_job
        self._journal.acknowledged(job_id)
        return next_job
