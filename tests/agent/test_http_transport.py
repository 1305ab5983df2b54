"""The agents' aiohttp transport against real sockets: what it sends, what it reads back,
and every way of getting no answer (refused, too slow, an untrusted certificate)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trustme
from aiohttp import web

from vulfix.agent.client import AgentClient, AgentUnavailable, RetryPolicy, http_client
from vulfix.agent.http_transport import AiohttpTransport, TransportFailure
from vulfix.agent.simulation import fleet_http_client

IN_FLIGHT = {"now": 0, "most": 0}


async def echo(request: web.Request) -> web.Response:
    delay = float(request.query.get("delay", "0"))
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["most"] = max(IN_FLIGHT["most"], IN_FLIGHT["now"])
    try:
        await asyncio.sleep(delay)
    finally:
        IN_FLIGHT["now"] -= 1
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "authorization": request.headers.get("Authorization", ""),
            "body": body.decode(),
        },
        status=int(request.query.get("status", "200")),
        headers={"Retry-After": "7"},
    )


@asynccontextmanager
async def server(tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def transport(base_url: str, **options: object) -> AiohttpTransport:
    made = http_client(base_url, **options)  # type: ignore[arg-type]
    assert isinstance(made, AiohttpTransport), "agents speak aiohttp outside tests"
    return made


async def test_a_request_and_its_answer_travel_whole() -> None:
    async with server() as url, transport(url + "/") as http:
        answer = await http.request(
            "POST",
            "/jobs/7/result",
            body=b'{"outcome":"success"}',
            params={"next": "1", "status": "202"},
            headers={"authorization": "Bearer t", "content-type": "application/json"},
        )
    assert answer.status == 202
    assert answer.headers["retry-after"] == answer.headers["Retry-After"] == "7"
    echoed = json.loads(answer.content)
    assert echoed == {
        "method": "POST",
        "path": "/agent/v1/jobs/7/result",
        "query": {"next": "1", "status": "202"},
        "authorization": "Bearer t",
        "body": '{"outcome":"success"}',
    }


async def test_a_refused_connection_is_a_transport_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens once it closes
    async with transport(f"http://127.0.0.1:{port}") as http:
        with pytest.raises(TransportFailure) as failure:
            await http.request("GET", "/jobs", body=None, params=None, headers={})
    assert not failure.value.untrusted_certificate


async def test_an_answer_slower_than_the_timeout_is_a_failure_unless_it_is_a_long_poll() -> None:
    async with server() as url, transport(url, timeout=0.2) as http:
        with pytest.raises(TransportFailure, match="Timeout"):
            await http.request("GET", "/jobs", body=None, params={"delay": "0.5"}, headers={})
        waited = await http.request(
            "GET", "/jobs", body=None, params={"delay": "0.5"}, headers={}, extra_time=2.0
        )
    assert waited.status == 200


async def test_an_untrusted_certificate_stops_the_client_at_once() -> None:
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with server(tls) as url:
        client = AgentClient(
            transport(url), host_token="t", retry=RetryPolicy(), sleep=sleep, owns_http=True
        )
        with pytest.raises(AgentUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await client.heartbeat()
        await client.aclose()
        assert sleeps == [], "the same certificate would fail again: no retry"
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        async with transport(url, verify=trusting) as http:
            answer = await http.request("POST", "/heartbeat", body=b"{}", params=None, headers={})
        assert answer.status == 200


async def test_a_fleet_holds_every_agents_long_poll_at_once() -> None:
    agents = 40
    IN_FLIGHT.update(now=0, most=0)
    async with server() as url:
        shared = fleet_http_client(url, agents)
        try:
            polls = [
                shared.request(
                    "GET", "/jobs", body=None, params={"delay": "0.3"}, headers={}, extra_time=5
                )
                for _ in range(agents)
            ]
            answers = await asyncio.gather(*polls)
        finally:
            await shared.aclose()
    assert [answer.status for answer in answers] == [200] * agents
    assert IN_FLIGHT["most"] == agents, "no agent's poll waited for another's connection"
