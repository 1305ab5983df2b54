"""The report route: applied once, the next job in the answer, and a wait for it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.agent_api.agent_calls import (
    API,
    Enrolled,
    agent_error,
    enrol,
    last_seen,
    leased_fix,
    until,
)
from tests.agent_api.fake_jobs import FakeJobSource, fix_work
from vulfix.agent_api import MemoryJobNotifier
from vulfix.agent_api.dispatch import AgentDispatch
from vulfix.agent_protocol import MAX_OUTPUT_TAIL
from vulfix.fixing.agent_port import SnapshotWork
from vulfix.fixing.clock import ManualClock
from vulfix.store.agent_registry import SqlHostRegistry


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
    await until(lambda: notifier.waiting_hosts > 0)  # the report reaches its wait
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


async def _report_in_messages(
    app: AgentDispatch, host: Enrolled, job_id: int, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Drives the report endpoint as an ASGI server delivers a body: in `messages`."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": f"{API}/jobs/{job_id}/result",
        "query_string": b"", "client": ("127.0.0.1", 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in host.headers.items()],
    }  # fmt: skip
    await app(scope, receive, send)
    return sent


async def test_a_report_body_in_several_messages_is_read_whole(
    app: AgentDispatch,
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    body = json.dumps({"outcome": "failure", "reason": "dpkg: error", "exit_code": 100}).encode()
    parts = [body[:7], b"", body[7:20], body[20:]]
    messages = [
        {"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
        for n, part in enumerate(parts)
    ]
    sent = await _report_in_messages(app, host, job.job_id, messages)
    assert sent[0]["status"] == 200, sent
    assert jobs.results[job.job_id].reason == "dpkg: error"


async def test_a_report_whose_agent_leaves_mid_body_changes_nothing(
    app: AgentDispatch,
    http: httpx.AsyncClient,
    registry: SqlHostRegistry,
    clock: ManualClock,
    jobs: FakeJobSource,
) -> None:
    host, job = await leased_fix(http, registry, clock, jobs)
    messages = [
        {"type": "http.request", "body": b'{"outcome": "succ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = await _report_in_messages(app, host, job.job_id, messages)
    assert sent[0]["status"] == 400
    assert jobs.report_calls == 0 and jobs.results == {}
