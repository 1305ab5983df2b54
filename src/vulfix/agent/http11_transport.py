"""HTTP/1.1 for agents over asyncio's own connections, answers parsed by httptools.

The agent API needs a sliver of HTTP: small JSON requests to one server, over a few kept-alive
connections (or, in a simulated fleet, one per agent). aiohttp's client did that for 125-147 us
of the simulator's CPU per report; this does it for 48-59 us (`bench/agent_http.py` on the same
machine and day), so one process can speak for ten thousand hosts. It is a small pool of
`asyncio.Protocol`s: requests are written whole, answers are parsed by httptools (the parser
uvicorn serves with), and every way an exchange can end without an answer is a
`TransportFailure`, which the agent client retries.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

import httptools
from multidict import CIMultiDict

from vulfix import __version__
from vulfix.agent.http_transport import HttpAnswer, TransportFailure, as_transport_failure

# Below `vulfix serve`'s 75 s keep-alive and common proxies' idle timeouts (60 s and more): an
# idle connection is dropped here before the far end closes it under a request.
IDLE_LIFETIME = 30.0


class _ConnectionLost(Exception):
    """The connection closed before any byte of the answer came back."""


class _Connection(asyncio.Protocol):
    """One connection to the server: one exchange at a time, then back to the pool."""

    def __init__(self, pool: set[_Connection]) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[HttpAnswer] | None = None
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._heard = False  # any byte of the answer came
        self._headers_done = False
        self.reusable = True
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._pool.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._pool.discard(self)
        if self._answer is None or self._answer.done():
            return
        if self._headers_done and not self._framed():
            self.on_message_complete()  # an answer that ends where the connection does
        elif not self._heard:
            self._answer.set_exception(_ConnectionLost())
        elif exc is None:
            self._answer.set_exception(TransportFailure("the server closed the connection"))
        else:
            self._answer.set_exception(as_transport_failure(exc))

    def data_received(self, data: bytes) -> None:
        if self._answer is None:
            self.close()  # the server spoke out of turn: nothing here can be trusted
            return
        self._heard = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(TransportFailure(f"unreadable answer: {exc}"))

    def on_message_begin(self) -> None:
        if self._answer is None:
            self.reusable = False  # a second answer to one request: the exchange is confused

    def _framed(self) -> bool:
        """The answer's length was known from its head (Content-Length, or chunks)."""
        framing = ("content-length", "transfer-encoding")
        return any(name.lower() in framing for name, _value in self._headers)

    def _begin_answer(self) -> None:
        self._headers, self._body = [], []
        self._headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._begin_answer()  # an interim answer (100 Continue, 103): the real one follows
            return
        answer = HttpAnswer(status, CIMultiDict(self._headers), b"".join(self._body))
        self.reusable = self.reusable and self._parser.should_keep_alive()
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(answer)
        self._answer = None

    def _fail(self, failure: TransportFailure) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(failure)
        self.close()

    def _time_out(self, seconds: float) -> None:
        self._fail(TransportFailure(f"TimeoutError: no answer in {seconds:g} s"))

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    async def exchange(self, request: bytes, seconds: float) -> HttpAnswer:
        """Writes `request` and reads its answer, waiting at most `seconds` for the whole of it."""
        assert self._transport is not None and self._answer is None
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[HttpAnswer] = loop.create_future()
        self._answer = answer
        self._begin_answer()
        self._heard = False
        self._transport.write(request)
        timer = loop.call_later(seconds, self._time_out, seconds)
        try:
            return await answer
        except asyncio.CancelledError:
            self.close()  # its answer may still come, and would be taken for the next one's
            raise
        finally:
            timer.cancel()
            self._answer = None


class Http11Transport:
    """Requests to the server at `base_url` over at most `max_connections` connections."""

    def __init__(
        self, base_url: str, *, tls: ssl.SSLContext, timeout: float, max_connections: int
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        # Every request's own headers: Host, and who is asking (for the server's logs).
        authority = url.netloc.rpartition("@")[2]
        self._fixed_headers = f"Host: {authority}\r\nUser-Agent: vulfix-agent/{__version__}\r\n"
        self._prefix = url.path.rstrip("/")
        self._tls = tls if url.scheme == "https" else None
        self.timeout = timeout
        self._max_connections = max_connections
        self._slots: asyncio.Semaphore | None = None  # made on first use, on the running loop
        self._idle: deque[_Connection] = deque()  # the most recently used last
        self._open: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        extra_time: float = 0.0,
    ) -> HttpAnswer:
        target = self._prefix + path + ("?" + urlencode(params) if params else "")
        request = self._encode(f"{method} {target}", headers, body)
        self._slots = self._slots or asyncio.Semaphore(self._max_connections)
        async with self._slots:
            connection = self._take_idle()
            if connection is not None:
                try:
                    return await self._exchange(connection, request, extra_time)
                except _ConnectionLost:
                    pass  # the server closed it as it sat idle: a new connection, not a failure
            connection = await self._connect()
            try:
                return await self._exchange(connection, request, extra_time)
            except _ConnectionLost as exc:
                raise TransportFailure("the server closed the connection unanswered") from exc

    async def _exchange(self, connection: _Connection, request: bytes, extra: float) -> HttpAnswer:
        answer = await connection.exchange(request, self.timeout + extra)
        if connection.reusable:
            now = asyncio.get_running_loop().time()
            connection.idle_since = now
            self._idle.append(connection)
            if now - self._idle[0].idle_since > IDLE_LIFETIME:
                self._idle.popleft().close()  # one at a time: old ones go as the pool turns over
        else:
            connection.close()
        return answer

    def _take_idle(self) -> _Connection | None:
        idle, now = self._idle, asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if connection.reusable and now - connection.idle_since < IDLE_LIFETIME:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:  # closed before or while this request waited for a connection
            raise TransportFailure("the agent's HTTP transport is closed")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._open), self._host, self._port, ssl=self._tls
                )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            raise as_transport_failure(exc) from exc
        return connection

    def _encode(self, request_line: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        """The request's bytes; `request_line` without its HTTP version."""
        lines = [f"{request_line} HTTP/1.1\r\n{self._fixed_headers}"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        head = "".join(lines)
        # Three line breaks in the first piece (request line, Host, User-Agent), one in each other.
        breaks = len(lines) + 2
        if head.count("\n") != breaks or head.count("\r") != breaks:
            raise ValueError("a line break inside a request's target or headers")
        return (head + "\r\n").encode("latin-1") + (body or b"")

    async def aclose(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._idle.clear()

    async def __aenter__(self) -> Http11Transport:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
