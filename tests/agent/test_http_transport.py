"""The agents' HTTP/1.1 transport against real sockets: what it sends, what it reads back,
how it keeps connections, and every way of getting no answer (refused, too slow, an untrusted
certificate, a server that hangs up or speaks nonsense)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trustme
from aiohttp import web

from vulfix import __version__
from vulfix.agent import http11_transport
from vulfix.agent.client import AgentClient, AgentUnavailable, RetryPolicy, http_client
from vulfix.agent.http11_transport import Http11Transport
from vulfix.agent.http_transport import TransportFailure
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
            "user_agent": request.headers.get("User-Agent", ""),
            "body": body.decode(),
            "peer": request.transport.get_extra_info("peername")[1],  # type: ignore[union-attr]
        },
        status=int(request.query.get("status", "200")),
        headers={"Retry-After": "7"},
    )


@asynccontextmanager
async def server(
    tls: ssl.SSLContext | None = None, keepalive_timeout: float = 75.0
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, keepalive_timeout=keepalive_timeout)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def transport(base_url: str, **options: object) -> Http11Transport:
    made = http_client(base_url, **options)  # type: ignore[arg-type]
    assert isinstance(made, Http11Transport), "agents speak Http11Transport outside tests"
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
    del echoed["peer"]
    assert echoed == {
        "method": "POST",
        "path": "/agent/v1/jobs/7/result",
        "query": {"next": "1", "status": "202"},
        "authorization": "Bearer t",
        "user_agent": f"vulfix-agent/{__version__}",
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
        for verify in (trusting, False):
            async with transport(url, verify=verify) as http:
                answer = await http.request(
                    "POST", "/heartbeat", body=b"{}", params=None, headers={}
                )
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


async def get(http: Http11Transport, path: str = "/jobs") -> tuple[int, bytes, int]:
    """(status, content, the server's view of the client's port) of a GET through `http`."""
    answer = await http.request("GET", path, body=None, params=None, headers={})
    peer = json.loads(answer.content)["peer"] if answer.content.startswith(b"{") else 0
    return answer.status, answer.content, peer


async def test_a_connection_is_kept_alive_and_reused() -> None:
    async with server() as url, transport(url) as http:
        peers = {(await get(http))[2] for _ in range(3)}
    assert len(peers) == 1


async def test_a_connection_the_server_closed_while_idle_is_replaced_unnoticed() -> None:
    async with server(keepalive_timeout=0.1) as url, transport(url) as http:
        first = await get(http)
        await asyncio.sleep(0.4)
        second = await get(http)
    assert first[0] == second[0] == 200
    assert first[2] != second[2]


async def test_an_idle_connection_past_its_lifetime_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http11_transport, "IDLE_LIFETIME", 0.05)
    async with server() as url, transport(url) as http:
        first = await get(http)
        await asyncio.sleep(0.1)
        second = await get(http)
    assert first[2] != second[2]


Reply = tuple[bytes, bool]  # the bytes to send back, and whether to hang up after them
Script = Callable[[int, int, bytes], Awaitable[Reply | None]]


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw server: for the n-th request (from 0) on its c-th connection (from 0), `script`
    gives the reply, or None to hang up unanswered. Yields its URL and a list holding the
    count of connections made and of connections the client closed."""
    counts = [0, 0]

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = counts[0]
        counts[0] += 1
        try:
            for n in itertools.count():
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                reply = await script(connection, n, head)
                if reply is None:
                    return
                writer.write(reply[0])
                if reply[1]:
                    return
        except asyncio.IncompleteReadError:
            counts[1] += 1
        finally:
            writer.close()

    listening = await asyncio.start_server(talk, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", counts
    finally:
        listening.close()


def ok(body: bytes = b"ok", *extra: bytes) -> Reply:
    """A 200 with `body` and the `extra` header lines; the connection stays open."""
    head = b"".join(header + b"\r\n" for header in extra)
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body), False


async def test_a_request_on_a_connection_closed_under_it_goes_out_again_on_a_new_one() -> None:
    async def second_request_unanswered(connection: int, n: int, head: bytes) -> Reply | None:
        return None if n == 1 else ok(b"%d" % connection)

    async with scripted(second_request_unanswered) as (url, counts), transport(url) as http:
        assert (await get(http))[1] == b"0"
        assert (await get(http))[1] == b"1", "sent again on a new connection"
    assert counts[0] == 2


async def test_a_new_connection_closed_unanswered_is_a_failure() -> None:
    async def never(connection: int, n: int, head: bytes) -> Reply | None:
        return None

    async with scripted(never) as (url, counts), transport(url) as http:
        with pytest.raises(TransportFailure, match="closed the connection unanswered"):
            await get(http)
    assert counts[0] == 1


async def test_an_answer_that_says_close_leaves_its_connection_unused() -> None:
    async def closing(connection: int, n: int, head: bytes) -> Reply | None:
        return ok(b"%d" % connection, b"Connection: close")

    async with scripted(closing) as (url, _), transport(url) as http:
        bodies = [(await get(http))[1] for _ in range(3)]
    assert bodies == [b"0", b"1", b"2"]


async def test_chunked_and_close_delimited_answers_are_read_whole() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"

    async def answers(connection: int, n: int, head: bytes) -> Reply | None:
        if b"chunked" in head:
            return chunked, False
        return b"HTTP/1.0 200 OK\r\n\r\nuntil the end", True

    async with scripted(answers) as (url, _), transport(url) as http:
        assert (await get(http, "/chunked"))[1] == b"hello world"
        assert (await get(http, "/chunked"))[1] == b"hello world", "and its connection kept"
        assert (await get(http, "/whole"))[1] == b"until the end"


@pytest.mark.parametrize(
    ("answer", "failure"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut short", "closed the connection"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed the connection"),
        (b"NONSENSE\r\n\r\n", "unreadable answer"),
    ],
)
async def test_an_answer_cut_short_or_unreadable_is_a_failure(answer: bytes, failure: str) -> None:
    async def broken(connection: int, n: int, head: bytes) -> Reply | None:
        return answer, True

    async with scripted(broken) as (url, _), transport(url) as http:
        with pytest.raises(TransportFailure, match=failure):
            await get(http)


async def test_a_cancelled_request_leaves_no_answer_behind_for_the_next() -> None:
    async def by_path(connection: int, n: int, head: bytes) -> Reply | None:
        path = head.split(b" ")[1]
        if path.endswith(b"/slow"):
            await asyncio.sleep(0.3)
        return ok(path)

    async with scripted(by_path) as (url, _), transport(url) as http:
        slow = asyncio.create_task(get(http, "/slow"))
        await asyncio.sleep(0.1)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert (await get(http, "/fast"))[1] == b"/agent/v1/fast"
        await asyncio.sleep(0.4)  # the slow answer, had its connection been kept, is in by now
        assert (await get(http, "/fast"))[1] == b"/agent/v1/fast"


async def test_a_line_break_in_a_header_is_refused_before_anything_is_sent() -> None:
    async with server() as url, transport(url) as http:
        for header in ("Bearer t\r\nX-Forged: 1", "Bearer t\nX-Forged: 1", "t\r"):
            with pytest.raises(ValueError, match="line break"):
                await http.request(
                    "GET", "/jobs", body=None, params=None, headers={"authorization": header}
                )


async def test_requests_beyond_the_pool_wait_for_a_connection() -> None:
    IN_FLIGHT.update(now=0, most=0)
    async with server() as url, transport(url, max_connections=3) as http:
        answers = await asyncio.gather(
            *(
                http.request("GET", "/jobs", body=None, params={"delay": "0.1"}, headers={})
                for _ in range(8)
            )
        )
    assert [answer.status for answer in answers] == [200] * 8
    assert IN_FLIGHT["most"] == 3


async def test_closing_the_transport_closes_its_connections_and_sends_nothing_more() -> None:
    async def answer(connection: int, n: int, head: bytes) -> Reply | None:
        return ok()

    async with scripted(answer) as (url, counts):
        http = transport(url)
        await get(http)
        await http.aclose()
        with pytest.raises(TransportFailure, match="closed"):
            await get(http)
        for _ in range(100):
            if counts[1]:
                break
            await asyncio.sleep(0.01)
    assert counts == [1, 1], "the server saw the client hang up, and no other connection"


async def test_a_cancelled_request_closes_its_connection() -> None:
    hung_up = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if await reader.read() == b"":
            hung_up.set()
        writer.close()

    listening = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with transport(f"http://127.0.0.1:{port}") as http:
        request = asyncio.create_task(get(http))
        await asyncio.sleep(0.1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.wait_for(hung_up.wait(), 2)
    listening.close()


async def test_an_interim_answer_is_passed_over_for_the_real_one() -> None:
    async def continued(connection: int, n: int, head: bytes) -> Reply | None:
        return b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"%d" % n)[0], False

    async with scripted(continued) as (url, counts), transport(url) as http:
        assert [(await get(http))[:2] for _ in range(2)] == [(200, b"0"), (200, b"1")]
    assert counts[0] == 1


async def test_a_connection_that_brings_more_than_the_answer_is_not_reused() -> None:
    async def stray(connection: int, n: int, head: bytes) -> Reply | None:
        begun = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart"
        return ok(b"%d-%d" % (connection, n))[0] + begun, False

    async with scripted(stray) as (url, counts), transport(url, timeout=2) as http:
        assert [(await get(http))[1] for _ in range(2)] == [b"0-0", b"1-0"]
    assert counts[0] == 2
