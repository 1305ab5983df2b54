from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.agent_api.fake_jobs import FakeJobSource, fix_work
from vulfix.agent_api import MemoryJobNotifier
from vulfix.agent_protocol import MAX_OUTPUT_TAIL
from vulfix.fixing.agent_port import JobAssignment, SnapshotWork
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.inventory_tables import hosts

API = "/agent/v1"


@dataclass
class Enrolled:
    quuid: str
    host_id: int
    headers: dict[str, str]


async def enrol(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, quuid: str = "q-1"
) -> Enrolled:
    token = await registry.create_enrollment_token("alice", timedelta(hours=1), clock.now())
    response = await http.post(f"{API}/enroll", json=enroll_body(token, quuid))
    assert response.status_code == 200, response.text
    answer = response.json()
    identity = await registry.authenticate(answer["host_token"])
    assert identity is not None
    return Enrolled(answer["quuid"], identity.host_id, auth(answer["host_token"]))


async def leased_fix(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> tuple[Enrolled, JobAssignment]:
    """An enrolled host holding the lease of a fix job it polled for."""
    host = await enrol(http, registry, clock)
    job = jobs.add(host.quuid, fix_work())
    polled = await http.get(f"{API}/jobs", headers=host.headers)
    assert polled.status_code == 200, polled.text
    return host, job


def enroll_body(token: str, quuid: str | None = "q-1", **changes: Any) -> dict[str, Any]:
    body = {
        "enroll_token": token,
        "quuid": quuid,
        "host_name": "web-1",
        "host_ip": "10.0.0.5",
        "os_family": "ubuntu",
        "snapshot_supported": True,
    }
    return body | changes


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def agent_error(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == error
    return str(body["message"])


async def last_seen(engine: AsyncEngine, host_id: int) -> Any:
    async with engine.connect() as conn:
        return await conn.scalar(select(hosts.c.last_seen_at).where(hosts.c.id == host_id))


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
    poll = asyncio.create_task(http.get(f"{API}/jobs", params={"wait": 30}, headers=host.headers))
    while notifier.waiting_hosts == 0:  # noqa: ASYNC110 (waits for the poll to reach its wait)
        await asyncio.sleep(0.005)
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


@pytest.mark.parametrize("wait", ["-1", "soon", "nan", "inf"])
async def test_a_bad_wait_is_422(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, wait: str
) -> None:
    host = await enrol(http, registry, clock)
    response = await http.get(f"{API}/jobs", params={"wait": wait}, headers=host.headers)
    agent_error(response, 422, "invalid_wait")


async def test_a_report_is_applied_once_and_a_resend_is_acknowledged(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    report = {"outcome": "failure", "reason": "E: broken", "exit_code": 100, "output_tail": "x"}
    url = f"{API}/jobs/{job.job_id}/result"

    first = await http.post(url, json=report, headers=host.headers)
    second = await http.post(url, json=report, headers=host.headers)

    assert first.json() == {"applied": True, "detail": "", "next_job": None}
    assert second.json() == {"applied": False, "detail": "already reported", "next_job": None}
    result = jobs.results[job.job_id]
    assert (result.outcome, result.reason, result.exit_code, result.output_tail) == (
        "failure",
        "E: broken",
        100,
        "x",
    )


async def test_a_report_asking_for_next_brings_the_hosts_next_job_leased(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host = await enrol(http, registry, clock)
    first = jobs.add(host.quuid, SnapshotWork("before-fix", 1))
    second = jobs.add(host.quuid, fix_work())
    await http.get(f"{API}/jobs", headers=host.headers)
    url = f"{API}/jobs/{first.job_id}/result"

    ack = await http.post(
        url, params={"next": "1"}, json={"outcome": "success"}, headers=host.headers
    )
    assert ack.status_code == 200
    assert ack.json()["applied"] is True
    assert ack.json()["next_job"]["job_id"] == second.job_id
    assert ack.json()["next_job"]["work"]["type"] == "fix"
    assert jobs.leased[second.job_id][0] == host.quuid

    # A resend asks again: it is acknowledged, and the job it brings is the one still held.
    again = await http.post(
        url, params={"next": "1"}, json={"outcome": "success"}, headers=host.headers
    )
    assert again.json()["applied"] is False
    assert again.json()["next_job"]["job_id"] == second.job_id

    done = f"{API}/jobs/{second.job_id}/result"
    last = await http.post(
        done, params={"next": "1"}, json={"outcome": "success"}, headers=host.headers
    )
    assert last.json() == {"applied": True, "detail": "", "next_job": None}  # nothing left


async def test_a_report_with_a_wait_brings_a_job_that_appears_during_it(
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    notifier: MemoryJobNotifier,
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    started = time.monotonic()
    report = asyncio.create_task(
        http.post(
            f"{API}/jobs/{job.job_id}/result",
            params={"next": "1", "wait": "30"},
            json={"outcome": "success"},
            headers=host.headers,
        )
    )
    async with asyncio.timeout(5):  # the report reaches its wait
        while notifier.waiting_hosts == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    assert jobs.results[job.job_id].outcome == "success", "applied before the wait"
    later = jobs.add(host.quuid, fix_work(vul_id=102))
    notifier.notify([host.host_id])

    ack = await report

    assert time.monotonic() - started < 5
    assert ack.status_code == 200
    assert ack.json()["applied"] is True
    assert ack.json()["next_job"]["job_id"] == later.job_id
    assert jobs.leased[later.job_id][0] == host.quuid
    assert jobs.woken_calls == 1, "asked again once woken, as a poll does"
    assert notifier.waiting_hosts == 0


async def test_a_report_whose_wait_runs_out_is_acknowledged_without_a_job(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    started = time.monotonic()
    ack = await http.post(
        f"{API}/jobs/{job.job_id}/result",
        params={"next": "1", "wait": "0.2"},
        json={"outcome": "success"},
        headers=host.headers,
    )
    assert time.monotonic() - started >= 0.2
    assert ack.json() == {"applied": True, "detail": "", "next_job": None}
    assert jobs.woken_calls == 0, "a wait that ran out has nothing new to find"


@pytest.mark.parametrize(
    "params",
    [
        {"wait": "5"},
        {"next": "0", "wait": "5"},
        {"next": "1", "wait": "-1"},
        {"next": "1", "wait": "soon"},
        {"next": "1", "wait": "inf"},
    ],
)
async def test_a_report_with_a_bad_wait_is_refused_and_changes_nothing(
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    params: dict[str, str],
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    response = await http.post(
        f"{API}/jobs/{job.job_id}/result",
        params=params,
        json={"outcome": "success"},
        headers=host.headers,
    )
    agent_error(response, 422, "invalid_wait")
    assert jobs.results == {}


@pytest.mark.parametrize("value", ["2", "yes", "true", ""])
async def test_a_report_with_a_bad_next_is_refused_and_changes_nothing(
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    value: str,
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    response = await http.post(
        f"{API}/jobs/{job.job_id}/result",
        params={"next": value},
        json={"outcome": "success"},
        headers=host.headers,
    )
    agent_error(response, 422, "invalid_next")
    assert jobs.results == {}


async def test_a_report_for_another_hosts_job_or_no_job_is_404(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host = await enrol(http, registry, clock)
    other = await enrol(http, registry, clock, quuid="q-2")
    job = jobs.add(other.quuid, fix_work())
    await http.get(f"{API}/jobs", headers=other.headers)
    report = {"outcome": "success"}
    for job_path in (str(job.job_id), "999", "abc", "0", "99999999999999999999999"):
        response = await http.post(
            f"{API}/jobs/{job_path}/result", json=report, headers=host.headers
        )
        agent_error(response, 404, "unknown_job")
    assert jobs.results == {}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"not json", 400, "malformed_body"),
        (b'{"outcome": "maybe"}', 422, "invalid_body"),
        (b'{"outcome": "success", "surprise": 1}', 422, "invalid_body"),
        (b'{"outcome": "success", "exit_code": 99999999999999999999}', 422, "invalid_body"),
        (b'{"outcome": "success", "duration_seconds": -1}', 422, "invalid_body"),
        (b'{"outcome": "success", "provider_ref": "' + b"r" * 513 + b'"}', 422, "invalid_body"),
        (
            json.dumps({"outcome": "success", "output_tail": "x" * (256 * 1024)}).encode(),
            413,
            "body_too_large",
        ),
    ],
)
async def test_a_bad_report_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
    engine: AsyncEngine,
    body: bytes,
    status: int,
    error: str,
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    seen = await last_seen(engine, host.host_id)
    clock.advance(60)

    response = await http.post(
        f"{API}/jobs/{job.job_id}/result", content=body, headers=host.headers
    )

    agent_error(response, status, error)
    assert jobs.report_calls == 0
    assert await last_seen(engine, host.host_id) == seen


async def test_an_over_long_output_tail_keeps_its_last_64_kib(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock, jobs: FakeJobSource
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    tail = "a" * 1000 + "b" * MAX_OUTPUT_TAIL
    report = {"outcome": "success", "output_tail": tail, "reason": "r" * 5000}

    response = await http.post(f"{API}/jobs/{job.job_id}/result", json=report, headers=host.headers)

    assert response.status_code == 200
    assert jobs.results[job.job_id].output_tail == "b" * MAX_OUTPUT_TAIL
    assert jobs.results[job.job_id].reason == "r" * 1024


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
        assert await last_seen(engine, host.host_id) == moment.replace(tzinfo=None)


async def test_a_body_far_over_the_limit_is_refused_from_its_declared_length(
    http: httpx.AsyncClient, registry: SqlHostRegistry, clock: ManualClock
) -> None:
    host = await enrol(http, registry, clock)
    response = await http.post(
        f"{API}/heartbeat", content=b"{" + b" " * (5 * 1024 * 1024) + b"}", headers=host.headers
    )
    agent_error(response, 413, "body_too_large")
