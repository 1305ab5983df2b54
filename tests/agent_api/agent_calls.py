"""Calls to the agent API as an agent makes them, for the route tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.agent_api.fake_jobs import FakeJobSource, fix_work
from vulfix.agent_api import MemoryJobNotifier
from vulfix.fixing.agent_port import JobAssignment
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


async def held_poll(
    http: httpx.AsyncClient, host: Enrolled, notifier: MemoryJobNotifier
) -> asyncio.Task[httpx.Response]:
    """The host's poll for a job, once it waits in the notifier (nothing was queued)."""
    poll = asyncio.create_task(http.get(f"{API}/jobs", params={"wait": 30}, headers=host.headers))
    await until(lambda: notifier.waiting_hosts > 0)
    return poll


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


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Returns once `check()` holds (a request reached its wait, a report was applied);
    fails after `seconds` instead of hanging the test."""
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 (a condition of the app, not an event of ours)
            await asyncio.sleep(0.005)
