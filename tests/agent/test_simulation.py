from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from tests.agent_api.agent_calls import until
from tests.agent_api.fake_jobs import FakeJobSource, fix_work
from tests.agent_api.harness import agent_app, migrated_engine
from vulfix.agent.client import http_client
from vulfix.agent.simulated_hosts import parse_inventory
from vulfix.agent.simulation import FleetOptions, FleetSummary, run_fleet
from vulfix.agent.timeline import VirtualTimeline
from vulfix.agent_api import MemoryJobNotifier
from vulfix.fixing.agent_port import HostIdentity, JobResult, SnapshotDeleteWork, SnapshotWork
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.inventory_tables import hosts

FIXES_PER_HOST = 8
INVENTORY: dict[str, Any] = {
    "hosts": [
        {"Quuid": "q-deb", "HostName": "web-1", "HostIp": "10.0.0.1", "OsFamily": "ubuntu"},
        {"Quuid": "q-rhel", "HostName": "db-1", "HostIp": "10.0.0.2", "OsFamily": "rhel"},
        {"Quuid": "q-win", "HostName": "ad-1", "HostIp": "10.0.0.3", "OsFamily": "windows"},
        {"Quuid": "q-bm", "OsFamily": "debian", "MachineType": "BM", "Tags": ["rack-7"]},
        {"Quuid": "q-nosnap", "OsFamily": "ubuntu", "SnapshotSupported": False, "RegionId": 4},
    ],
    "vulnerabilities": [{"VulId": 1, "VulName": "ignored by the simulator"}],
}


@dataclass
class FleetRun:
    jobs: FakeJobSource
    summary: FleetSummary
    enrolled_hosts: dict[str, str]
    elapsed: float
    polls_with_a_job: int

    def results(self) -> dict[int, JobResult]:
        return self.jobs.results

    def outcomes(self, kind: type) -> list[str]:
        return [
            self.jobs.results[job_id].outcome
            for job_id, (_quuid, job) in sorted(self.jobs.leased.items())
            if isinstance(job.work, kind)
        ]


def queue_jobs(jobs: FakeJobSource) -> int:
    for host in INVENTORY["hosts"]:
        jobs.add(host["Quuid"], SnapshotWork("before-fix", 1))
        for number in range(FIXES_PER_HOST):
            jobs.add(host["Quuid"], fix_work(vul_id=100 + number, package=f"pkg{number}"))
        jobs.add(host["Quuid"], SnapshotDeleteWork("snap-0000abcd", "lvm:vg0/old"))
    return len(INVENTORY["hosts"]) * (FIXES_PER_HOST + 2)


async def run_simulation(directory: Path, **options: Any) -> FleetRun:
    clock = ManualClock()
    timeline = VirtualTimeline(on_advance=clock.advance)
    jobs = FakeJobSource()
    queued = queue_jobs(jobs)
    async with migrated_engine(directory) as engine:
        registry = SqlHostRegistry(engine)
        token = await registry.create_enrollment_token("alice", timedelta(days=1), clock.now())
        app = agent_app(registry, jobs, MemoryJobNotifier(), clock)
        polls_with_a_job = 0

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            async def counted(message: Any) -> None:
                nonlocal polls_with_a_job
                is_poll = scope["method"] == "GET" and scope["path"].endswith("/jobs")
                if message["type"] == "http.response.start" and is_poll:
                    polls_with_a_job += message["status"] == 200
                await send(message)

            await app(scope, receive, counted)

        http = http_client("http://vulfix.test", transport=httpx.ASGITransport(app=counting))
        fleet_options = FleetOptions(duration=300, poll_wait=0, idle_poll_interval=2, **options)
        started = time.monotonic()
        async with http:
            summary = await run_fleet(
                parse_inventory(json.dumps(INVENTORY).encode()),
                http,
                token,
                fleet_options,
                timeline=timeline,
            )
        elapsed = time.monotonic() - started
        async with engine.connect() as conn:
            rows = (await conn.execute(select(hosts.c.quuid, hosts.c.host_name))).all()
    assert len(jobs.results) == queued, "every job was run and reported"
    assert timeline.now() >= 300
    hosts_by_quuid = {row.quuid: row.host_name for row in rows}
    return FleetRun(jobs, summary, hosts_by_quuid, elapsed, polls_with_a_job)


async def test_every_job_of_every_host_is_run_and_reported(tmp_path: Path) -> None:
    run = await run_simulation(tmp_path, seed=7)

    assert run.summary.enrolled == 5
    assert set(run.enrolled_hosts) == {h["Quuid"] for h in INVENTORY["hosts"]}
    assert run.enrolled_hosts["q-deb"] == "web-1"
    assert run.enrolled_hosts["q-bm"].startswith("sim-"), "a blank HostName is made up"
    assert run.summary.jobs == {
        # A BM host without SnapshotSupported cannot snapshot, as the import format says.
        ("snapshot", "success"): 3,
        ("snapshot", "unsupported"): 2,
        ("fix", "success"): 5 * FIXES_PER_HOST,
        ("snapshot_delete", "success"): 5,
    }
    assert (run.summary.duplicates, run.summary.refused, run.summary.unreported) == (0, 0, 0)
    assert run.elapsed < 60, "virtual time: nothing sleeps for real"


async def test_each_report_brings_the_next_job_so_each_host_polls_one_in(tmp_path: Path) -> None:
    run = await run_simulation(tmp_path, seed=7)
    assert len(run.results()) == 5 * (FIXES_PER_HOST + 2)
    assert run.polls_with_a_job == 5, "one poll per host; every later job came with a report"


async def test_failures_follow_the_rates_with_plausible_reasons(tmp_path: Path) -> None:
    run = await run_simulation(tmp_path, seed=11, fail_rate=0.5, snapshot_fail_rate=1.0)

    fixes = run.outcomes(type(fix_work()))
    assert 10 <= fixes.count("failure") <= 30 and set(fixes) == {"success", "failure"}
    assert sorted(run.outcomes(SnapshotWork)) == ["failure"] * 3 + ["unsupported"] * 2
    assert run.outcomes(SnapshotDeleteWork) == ["success"] * 5
    failed = [r for r in run.results().values() if r.outcome == "failure"]
    assert all(r.reason and r.exit_code not in (None, 0) and r.output_tail for r in failed)
    apt = [r for r in failed if "apt-get" in r.output_tail]
    assert apt and all(r.exit_code == 100 for r in apt)
    succeeded = [r for r in run.results().values() if r.outcome == "success"]
    assert all(r.exit_code == 0 and r.duration_seconds > 0 for r in succeeded)


async def test_the_same_seed_gives_the_same_results(tmp_path: Path) -> None:
    options = {"seed": 3, "fail_rate": 0.3, "snapshot_fail_rate": 0.3}
    first = await run_simulation(tmp_path / "a", **options)
    second = await run_simulation(tmp_path / "b", **options)
    other = await run_simulation(tmp_path / "c", **(options | {"seed": 4}))

    assert first.results() == second.results()
    assert first.results() != other.results()


async def test_speed_shortens_jobs_and_heartbeats_keep_leases(tmp_path: Path) -> None:
    run = await run_simulation(tmp_path, seed=5, speed=4.0, heartbeat_interval=0.5)
    fixes = [r for r in run.results().values() if r.exit_code == 0 and "upgraded" in r.output_tail]
    assert fixes and all(0.75 <= r.duration_seconds <= 2.5 for r in fixes)
    assert run.jobs.extended, "heartbeats during a job name it, extending its lease"


def test_inventory_hosts_take_the_import_formats_defaults() -> None:
    parsed = {host.quuid: host for host in parse_inventory(json.dumps(INVENTORY).encode())}
    assert parsed["q-deb"].machine_type == "CVM"
    assert parsed["q-nosnap"].snapshot_supported is False
    assert parsed["q-bm"].host_name == ""


class ForgetfulRegistry(SqlHostRegistry):
    """Refuses each host's token once, as if the host had been re-enrolled elsewhere."""

    refused: set[str]

    async def authenticate(self, host_token: str) -> HostIdentity | None:
        identity = await super().authenticate(host_token)
        if identity is not None and identity.quuid not in self.refused:
            self.refused.add(identity.quuid)
            return None
        return identity


async def test_an_agent_whose_token_stops_working_enrols_again(tmp_path: Path) -> None:
    clock = ManualClock()
    timeline = VirtualTimeline(on_advance=clock.advance)
    jobs = FakeJobSource()
    queued = queue_jobs(jobs)
    async with migrated_engine(tmp_path) as engine:
        registry = ForgetfulRegistry(engine)
        registry.refused = set()
        token = await registry.create_enrollment_token("alice", timedelta(days=1), clock.now())
        app = agent_app(registry, jobs, MemoryJobNotifier(), clock)
        async with http_client("http://t", transport=httpx.ASGITransport(app=app)) as http:
            summary = await run_fleet(
                parse_inventory(json.dumps(INVENTORY).encode()),
                http,
                token,
                FleetOptions(duration=300, poll_wait=0, seed=1),
                timeline=timeline,
            )
    assert registry.refused == {h["Quuid"] for h in INVENTORY["hosts"]}
    assert summary.enrolled == 5 and summary.enrol_refused == 0
    assert len(jobs.results) == queued


class HeldReports(httpx.AsyncBaseTransport):
    """Holds every job report until `release` is set, as a server that applied a report and
    has not answered yet (or is being resent to) would."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.reached, self.release = asyncio.Event(), asyncio.Event()
        self.after_release: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.release.is_set():
            self.after_release.append(request.url.path)
        if request.url.path.endswith("/result"):
            self.reached.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)


async def stop_while_reporting(directory: Path, grace: float, release_after: float | None) -> Any:
    """One host with two jobs; the fleet is stopped while the first job's report is held,
    which is released after `release_after` seconds (never when None)."""
    jobs = FakeJobSource()
    jobs.add("q-one", SnapshotWork("before-fix", 1))
    jobs.add("q-one", fix_work())
    clock = ManualClock()
    async with migrated_engine(directory) as engine:
        registry = SqlHostRegistry(engine)
        token = await registry.create_enrollment_token("alice", timedelta(days=1), clock.now())
        app = agent_app(registry, jobs, MemoryJobNotifier(), clock)
        held = HeldReports(httpx.ASGITransport(app=app))
        options = FleetOptions(speed=100, poll_wait=0, ramp_up=0, seed=1, stop_grace=grace)
        stop = asyncio.Event()
        one_host = {"hosts": [{"Quuid": "q-one", "OsFamily": "ubuntu"}]}
        inventory = parse_inventory(json.dumps(one_host).encode())
        async with http_client("http://t", transport=held) as http:
            fleet = asyncio.create_task(run_fleet(inventory, http, token, options, stop=stop))
            await asyncio.wait_for(held.reached.wait(), 10)
            stop.set()
            started = time.monotonic()
            if release_after is not None:
                await asyncio.sleep(release_after)
                held.release.set()
            summary = await asyncio.wait_for(fleet, 10)
    return summary, jobs, held, time.monotonic() - started


async def test_a_stopping_fleet_lets_a_report_under_way_be_acknowledged(tmp_path: Path) -> None:
    summary, jobs, held, _ = await stop_while_reporting(tmp_path, grace=5, release_after=0.3)

    assert summary.jobs == {("snapshot", "success"): 1}, "the held report was acknowledged"
    assert summary.unreported == 0
    assert list(jobs.results) == [1], "the stopped agent took no further job"
    assert held.after_release == [], "nothing but the held report reached the server"


async def test_a_report_held_past_the_grace_counts_as_not_delivered(tmp_path: Path) -> None:
    summary, jobs, _, waited = await stop_while_reporting(tmp_path, grace=0.3, release_after=None)

    assert (summary.jobs, summary.unreported) == ({}, 1)
    assert jobs.results == {}
    assert 0.3 <= waited < 3, "the stop waited for the grace, and no longer"


async def test_a_report_waits_for_the_hosts_next_job_instead_of_a_poll(tmp_path: Path) -> None:
    """A host whose report found no next job waits in that report, as in a poll: a job queued
    meanwhile comes in its answer, and the host never polls between the two jobs. The wait
    ends in time for a stopping fleet to have the report acknowledged."""
    jobs = FakeJobSource()
    notifier = MemoryJobNotifier()
    clock = ManualClock()
    first = jobs.add("q-one", SnapshotWork("before-fix", 1))
    calls: list[str] = []
    async with migrated_engine(tmp_path) as engine:
        registry = SqlHostRegistry(engine)
        token = await registry.create_enrollment_token("alice", timedelta(days=1), clock.now())
        app = agent_app(registry, jobs, notifier, clock)

        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            calls.append(f"{scope['method']} {scope['path'].rsplit('/', 1)[-1]}")
            await app(scope, receive, send)

        options = FleetOptions(speed=1000, poll_wait=30, ramp_up=0, seed=1, stop_grace=3)
        one_host = {"hosts": [{"Quuid": "q-one", "OsFamily": "ubuntu"}]}
        stop = asyncio.Event()
        transport = httpx.ASGITransport(app=recorded)
        async with http_client("http://t", transport=transport) as http:
            fleet = asyncio.create_task(
                run_fleet(parse_inventory(json.dumps(one_host).encode()), http, token, options,
                          stop=stop)
            )  # fmt: skip
            # The snapshot's report reaches its wait.
            await until(lambda: first.job_id in jobs.results and notifier.waiting_hosts > 0, 10)
            host_id = await registry_host_id(engine, "q-one")
            second = jobs.add("q-one", fix_work())
            notifier.notify([host_id])
            # The fix came in the answer, and its report waits in turn.
            await until(lambda: second.job_id in jobs.results and notifier.waiting_hosts > 0, 10)
            stop.set()
            started = time.monotonic()
            summary = await asyncio.wait_for(fleet, 10)

    assert calls == ["POST enroll", "GET jobs", "POST result", "POST result"]
    assert summary.jobs == {("snapshot", "success"): 1, ("fix", "success"): 1}
    assert summary.unreported == 0, "the waiting report was answered within the grace"
    assert time.monotonic() - started < 3


async def registry_host_id(engine: Any, quuid: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(hosts.c.id).where(hosts.c.quuid == quuid)))
