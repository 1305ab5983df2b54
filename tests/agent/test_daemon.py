"""The host agent's loop against the real agent API routes and registry (a fake job source
and a recording `JobWork` stand in for the engine and the host's executors)."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.agent_api.fake_jobs import FakeJobSource, fix_work
from tests.agent_api.harness import agent_app, migrated_engine
from vulfix.agent.client import AgentClient, RetryPolicy, http_client
from vulfix.agent.config import AgentConfig
from vulfix.agent.daemon import INTERRUPTED_REASON, EnrollmentFailed, HostAgent
from vulfix.agent.state_files import IdentityStore, Journal
from vulfix.agent_api import MemoryJobNotifier
from vulfix.agent_protocol import JobEnvelope, JobReport
from vulfix.fixing.agent_port import AgentTimings, SnapshotWork
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry

FAST = AgentTimings(heartbeat_interval=0.05, poll_wait=0.05)


@dataclass
class RecordingWork:
    """Runs nothing; remembers which jobs it was asked to run."""

    seconds: float = 0.0
    ran: list[int] = field(default_factory=list)
    snapshot_supported: bool = True

    async def run(self, job: JobEnvelope) -> JobReport:
        self.ran.append(job.job_id)
        await asyncio.sleep(self.seconds)
        return JobReport(outcome="success", exit_code=0, output_tail=f"ran job {job.job_id}\n")


@dataclass
class Bench:
    """One server (routes, registry, fake jobs) and everything an agent needs to reach it."""

    registry: SqlHostRegistry
    jobs: FakeJobSource
    app: object
    token: str
    state_dir: Path

    def agent(self, work: RecordingWork, **config: object) -> HostAgent:
        values: dict[str, object] = {
            "server": "http://vulfix.test",
            "enroll_token": self.token,
            "state_dir": str(self.state_dir),
            "host_name": "web-1",
            "host_ip": "10.0.0.1",
            "os_family": "debian",
        }
        settings = AgentConfig(**{**values, **config})  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=self.app)  # type: ignore[arg-type]
        client = AgentClient(
            http_client(settings.server, transport=transport),
            retry=RetryPolicy(attempts=2, first_delay=0.01, max_delay=0.02),
            owns_http=True,
        )
        return HostAgent(
            settings,
            client,
            work,
            os_family="debian",
            identities=IdentityStore(self.state_dir),
            journal=Journal(self.state_dir),
        )


@pytest.fixture
async def bench(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = ManualClock()
    async with migrated_engine(tmp_path) as engine:
        registry = SqlHostRegistry(engine)
        token = await registry.create_enrollment_token("alice", timedelta(days=1), clock.now())
        jobs = FakeJobSource()
        app = agent_app(registry, jobs, MemoryJobNotifier(), clock, FAST)
        state_dir = tmp_path / "agent-state"
        state_dir.mkdir(mode=0o700)
        yield Bench(registry, jobs, app, token, state_dir)


async def serve_until(agent: HostAgent, done: Callable[[], bool]) -> None:
    """Runs the agent until `done()` holds (checked every 10 ms), for at most 10 s."""
    stop = asyncio.Event()

    async def watch() -> None:
        while not done():  # noqa: ASYNC110 - a condition on outside state, not an event
            await asyncio.sleep(0.01)
        stop.set()

    async with asyncio.timeout(10):
        await asyncio.gather(agent.run(stop), watch())


async def test_enrols_once_and_keeps_its_identity_private(bench: Bench) -> None:
    first = bench.agent(RecordingWork())
    await serve_until(first, lambda: first.identity is not None)
    state = bench.state_dir / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert first.identity is not None and first.identity.host_token in state.read_text()

    bench.jobs.add(first.identity.quuid, fix_work())
    work = RecordingWork()
    second = bench.agent(work, enroll_token="")  # no token needed once enrolled
    await serve_until(second, lambda: 1 in bench.jobs.results)
    assert second.identity == first.identity
    assert work.ran == [1]
    assert bench.jobs.results[1].outcome == "success"


async def test_runs_jobs_one_at_a_time_in_order_and_heartbeats_keep_the_lease(
    bench: Bench,
) -> None:
    agent = bench.agent(RecordingWork())
    await serve_until(agent, lambda: agent.identity is not None)
    assert agent.identity is not None
    quuid = agent.identity.quuid
    bench.jobs.add(quuid, SnapshotWork("before-fix", 3))
    bench.jobs.add(quuid, fix_work(vul_id=1))
    bench.jobs.add(quuid, fix_work(vul_id=2))
    work = RecordingWork(seconds=0.2)
    await serve_until(bench.agent(work), lambda: len(bench.jobs.results) == 3)
    assert work.ran == [1, 2, 3]
    assert set(bench.jobs.extended) == {1, 2, 3}, "each job's lease was extended while it ran"
    journal = Journal(bench.state_dir)
    assert journal.unacknowledged() == [] and journal.interrupted() == []


async def test_an_interrupted_job_is_reported_failed_and_never_run_again(bench: Bench) -> None:
    agent = bench.agent(RecordingWork())
    await serve_until(agent, lambda: agent.identity is not None)
    assert agent.identity is not None
    bench.jobs.add(agent.identity.quuid, fix_work())
    # The agent took job 1, journalled it as running, then died (as `kill -9` leaves it).
    Journal(bench.state_dir).started(1)
    await bench.jobs.next_job(await _host(bench, agent.identity.host_token), ManualClock().now())

    work = RecordingWork()
    await serve_until(bench.agent(work), lambda: 1 in bench.jobs.results)
    assert work.ran == []
    assert bench.jobs.results[1].outcome == "failure"
    assert bench.jobs.results[1].reason == INTERRUPTED_REASON


async def test_a_report_the_server_never_acknowledged_is_resent_not_rerun(bench: Bench) -> None:
    agent = bench.agent(RecordingWork())
    await serve_until(agent, lambda: agent.identity is not None)
    assert agent.identity is not None
    bench.jobs.add(agent.identity.quuid, fix_work())
    await bench.jobs.next_job(await _host(bench, agent.identity.host_token), ManualClock().now())
    finished = JobReport(outcome="failure", reason="still vulnerable: openssl", exit_code=0)
    Journal(bench.state_dir).finished(1, finished)

    work = RecordingWork()
    await serve_until(bench.agent(work), lambda: 1 in bench.jobs.results)
    assert work.ran == []
    assert bench.jobs.results[1].reason == "still vulnerable: openssl"
    assert Journal(bench.state_dir).unacknowledged() == []


async def test_a_job_handed_out_again_gets_the_journalled_report(bench: Bench) -> None:
    agent = bench.agent(RecordingWork())
    await serve_until(agent, lambda: agent.identity is not None)
    assert agent.identity is not None
    bench.jobs.add(agent.identity.quuid, fix_work())
    journal = Journal(bench.state_dir)
    journal.finished(1, JobReport(outcome="success", exit_code=0))
    journal.acknowledged(1)  # acknowledged, yet the server hands the job out again

    work = RecordingWork()
    await serve_until(bench.agent(work), lambda: 1 in bench.jobs.results)
    assert work.ran == []
    assert bench.jobs.results[1].outcome == "success"


async def test_a_forgotten_host_token_enrols_again_with_the_same_quuid(bench: Bench) -> None:
    agent = bench.agent(RecordingWork())
    await serve_until(agent, lambda: agent.identity is not None)
    assert agent.identity is not None
    quuid, old_token = agent.identity.quuid, agent.identity.host_token
    store = IdentityStore(bench.state_dir)
    saved = store.load()
    assert saved is not None
    saved.host_token = "vfh_revoked"
    store.save(saved)
    bench.jobs.add(quuid, fix_work())

    again = bench.agent(RecordingWork())
    await serve_until(again, lambda: 1 in bench.jobs.results)
    assert again.identity is not None and again.identity.quuid == quuid
    assert again.identity.host_token not in ("vfh_revoked", old_token)


async def test_a_refused_enrolment_stops_the_agent_with_the_reason(bench: Bench) -> None:
    agent = bench.agent(RecordingWork(), enroll_token="vfe_not-a-token")
    with pytest.raises(EnrollmentFailed, match="refused"):
        await serve_until(agent, lambda: False)


async def _host(bench: Bench, host_token: str):  # type: ignore[no-untyped-def]
    host = await bench.registry.authenticate(host_token)
    assert host is not None
    return host


async def test_a_queue_of_jobs_takes_one_poll_each_report_brings_the_next(bench: Bench) -> None:
    agent = bench.agent(RecordingWork())
    await serve_until(agent, lambda: agent.identity is not None)
    assert agent.identity is not None
    for vul_id in (1, 2, 3):
        bench.jobs.add(agent.identity.quuid, fix_work(vul_id=vul_id))
    requests: list[tuple[str, str]] = []
    inner = bench.app

    async def counting(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http":
            requests.append((str(scope["method"]), str(scope["path"])))
        await inner(scope, receive, send)  # type: ignore[operator]

    bench.app = counting
    work = RecordingWork()
    await serve_until(bench.agent(work), lambda: len(bench.jobs.results) == 3)
    assert work.ran == [1, 2, 3]
    reports = [path for method, path in requests if path.endswith("/result")]
    assert reports == [f"/agent/v1/jobs/{n}/result" for n in (1, 2, 3)]
    polls_before_last_report = requests.index(("POST", reports[-1]))
    assert [p for _, p in requests[:polls_before_last_report]].count("/agent/v1/jobs") == 1


async def test_a_stopping_agent_asks_for_no_next_job(bench: Bench) -> None:
    agent = bench.agent(RecordingWork())
    await serve_until(agent, lambda: agent.identity is not None)
    assert agent.identity is not None
    bench.jobs.add(agent.identity.quuid, fix_work(vul_id=1))
    bench.jobs.add(agent.identity.quuid, fix_work(vul_id=2))
    work = RecordingWork(seconds=0.3)
    stopping = bench.agent(work)
    stop = asyncio.Event()

    async def stop_while_the_first_job_runs() -> None:
        while not work.ran:  # noqa: ASYNC110 - a condition on outside state
            await asyncio.sleep(0.01)
        stop.set()

    async with asyncio.timeout(10):
        await asyncio.gather(stopping.run(stop), stop_while_the_first_job_runs())
    assert work.ran == [1] and set(bench.jobs.results) == {1}
    assert 2 not in bench.jobs.leased, "the second job was not handed out"
