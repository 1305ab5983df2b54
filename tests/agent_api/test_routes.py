from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.agent_api.agent_calls import (
    API,
    agent_error,
    auth,
    enrol,
    enroll_body,
    held_poll,
    last_seen,
    leased_fix,
)
from tests.agent_api.fake_jobs import FakeJobSource, fix_work
from vulfix.agent_api import MemoryJobNotifier
from vulfix.fixing.agent_port import JobAssignment, SnapshotWork
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.inventory_tables import hosts


async def test_enrol_answers_the_host_token_and_the_agents_timings(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock
) -> None:
    token = await registry.create_enrollment_token("alice", timedelta(hours=1), clock.now())
    response = await http.post(f"{API}/enroll", json=enroll_body(token, None))
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"quuid", "host_token", "heartbeat_interval", "poll_wait"}
    assert (answer["heartbeat_interval"], answer["poll_wait"]) == (30.0, 25.0)
    identity = await registry.authenticate(answer["host_token"])
    assert identity is not None and identity.quuid == answer["quuid"]


async def test_enrol_with_a_bad_token_is_refused_and_creates_nothing(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, engine: AsyncEngine
) -> None:
    token = await registry.create_enrollment_token("alice", timedelta(hours=1), clock.now())
    clock.advance(2 * 3600)
    message = agent_error(
        await http.post(f"{API}/enroll", json=enroll_body(token)), 403, "enrollment_refused"
    )
    assert "expired" in message
    agent_error(
        await http.post(f"{API}/enroll", json=enroll_body("nope")), 403, "enrollment_refused"
    )
    agent_error(await http.post(f"{API}/enroll", content=b"{"), 400, "malformed_body")
    agent_error(
        await http.post(f"{API}/enroll", json=enroll_body(token, extra=1)), 422, "invalid_body"
    )
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(hosts)) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/heartbeat"), ("GET", "/jobs?wait=0"), ("POST", "/jobs/1/result")],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, auth("vfh_unknown")],
)
async def test_calls_without_a_valid_host_token_get_401(
    http: httpx.AsyncClient, jobs: FakeJobSource, method: str, path: str, headers: dict[str, str]
) -> None:
    body = b'{"outcome": "success"}' if path.endswith("result") else b"{}"
    content = body if method == "POST" else None
    response = await http.request(method, API + path, headers=headers, content=content)
    agent_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert jobs.report_calls == 0


async def test_long_poll_returns_a_job_that_appears_during_the_wait(
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    notifier: MemoryJobNotifier,
) -> None:
    host = await enrol(http, registry, clock)
    started = time.monotonic()
    poll = await held_poll(http, host, notifier)
    job = jobs.add(host.quuid, fix_work())
    notifier.notify([host.host_id])

    response = await poll

    assert time.monotonic() - started < 5
    assert response.status_code == 200
    assert response.json() == {
        "job_id": job.job_id,
        "fix_id": 7,
        "lease_seconds": 900.0,
        "work": {
            "type": "fix",
            "vul_id": 101,
            "vul_name": "openssl vulnerability",
            "fix_method": 0,
            "packages": [{"name": "openssl", "fixed_version": "3.0.13-1"}],
            "service": "",
            "kb_id": 0,
            "kb_number": "",
            "kb_name": "",
            "pre_kb_list": [],
        },
    }
    assert notifier.waiting_hosts == 0
    assert jobs.next_job_calls == 2, "asked before the wait, and again once woken"
    assert jobs.woken_calls == 1, "the second time as woken: the store may skip its idle check"


async def test_a_held_poll_answers_the_job_handed_to_it_without_asking_again(
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    notifier: MemoryJobNotifier,
) -> None:
    host = await enrol(http, registry, clock)
    poll = await held_poll(http, host, notifier)

    notifier.hand_over({host.host_id: JobAssignment(41, 7, 900.0, SnapshotWork("pre-7", 3))})

    response = await asyncio.wait_for(poll, 5)
    assert response.status_code == 200
    assert response.json() == {
        "job_id": 41,
        "fix_id": 7,
        "lease_seconds": 900.0,
        "work": {"type": "snapshot", "snapshot_name": "pre-7", "save_days": 3},
    }
    assert jobs.next_job_calls == 1, "asked before the wait only"


async def test_long_poll_answers_204_when_nothing_comes(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host = await enrol(http, registry, clock)
    started = time.monotonic()
    response = await http.get(f"{API}/jobs", params={"wait": "0.2"}, headers=host.headers)
    assert response.status_code == 204 and response.content == b""
    assert time.monotonic() - started >= 0.2
    assert jobs.next_job_calls == 1, "a wait that timed out has nothing new to find"


async def test_a_queued_job_is_answered_at_once_and_again_until_reported(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host = await enrol(http, registry, clock)
    job = jobs.add(host.quuid, SnapshotWork("before-fix", 3))
    first = await http.get(f"{API}/jobs", params={"wait": 30}, headers=host.headers)
    again = await http.get(f"{API}/jobs", headers=host.headers)
    assert first.json() == again.json()
    assert first.json()["work"] == {
        "type": "snapshot",
        "snapshot_name": "before-fix",
        "save_days": 3,
    }
    assert first.json()["job_id"] == job.job_id
    # Answers are JSON, their length declared: what an HTTP client reads them by.
    assert first.headers["content-type"] == "application/json"
    assert first.headers["content-length"] == str(len(first.content))


@pytest.mark.parametrize("wait", ["-1", "soon", "nan", "inf"])
async def test_a_bad_wait_is_422(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, wait: str
) -> None:
    host = await enrol(http, registry, clock)
    response = await http.get(f"{API}/jobs", params={"wait": wait}, headers=host.headers)
    agent_error(response, 422, "invalid_wait")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("wait=0%2E05", 204),  # percent-encoded
        ("wait=soon&wait=0.05", 204),  # the last value counts
        ("wait=0.05&wait=soon", 422),
        ("other=x&&wait=0.05", 204),
        ("wait=", 422),
        ("wait", 422),
    ],
)
async def test_the_query_is_read_as_any_http_client_may_write_it(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, query: str, status: int
) -> None:
    host = await enrol(http, registry, clock)
    response = await http.get(f"{API}/jobs?{query}", headers=host.headers)
    assert response.status_code == status, response.text


async def test_a_heartbeat_extends_the_running_jobs_lease(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)

    running = await http.post(
        f"{API}/heartbeat", json={"running_job_id": job.job_id}, headers=host.headers
    )
    idle = await http.post(f"{API}/heartbeat", content=b"", headers=host.headers)
    stranger = await http.post(
        f"{API}/heartbeat", json={"running_job_id": 42}, headers=host.headers
    )
    negative = await http.post(
        f"{API}/heartbeat", json={"running_job_id": -1}, headers=host.headers
    )

    assert running.json() == {"lease_extended": True}
    assert idle.json() == {"lease_extended": False}
    assert stranger.json() == {"lease_extended": False}
    agent_error(negative, 422, "invalid_body")
    assert jobs.extended == [job.job_id]


async def test_every_authenticated_call_touches_the_host(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, engine: AsyncEngine
) -> None:
    host = await enrol(http, registry, clock)
    for method, path in (("POST", "/heartbeat"), ("GET", "/jobs")):
        moment = clock.advance(45)
        await http.request(method, API + path, headers=host.headers)
        await registry.flush()  # the request does not wait for its last-seen time
        assert await last_seen(engine, host.host_id) == moment.replace(tzinfo=None)


async def test_a_body_far_over_the_limit_is_refused_from_its_declared_length(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock
) -> None:
    host = await enrol(http, registry, clock)
    response = await http.post(
        f"{API}/heartbeat", content=b"{" + b" " * (5 * 1024 * 1024) + b"}", headers=host.headers
    )
    agent_error(response, 413, "body_too_large")
