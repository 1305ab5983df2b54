"""How an agent's requests reach the server: one small interface, two implementations.

`AiohttpTransport` is what agents use: a request through aiohttp costs 70-90 us of CPU
against 460-570 us through httpx, whose per-request timeout scopes and URL handling
dominated the simulator's profile (bench/agents.py, "the agents' client alone"). That
matters when one process speaks for a whole simulated fleet.
`HttpxTransport` wraps an `httpx.AsyncClient`, so that tests can drive the same
`AgentClient` into an ASGI app in-process (`httpx.ASGITransport`) or a scripted server
(`httpx.MockTransport`).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode

import aiohttp
import httpx


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]  # looked up case-insensitively
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class TransportFailure(Exception):
    """No answer: no connection, a timeout, or a broken exchange. Safe to resend."""

    def __init__(self, message: str, *, untrusted_certificate: bool = False) -> None:
        super().__init__(message)
        self.untrusted_certificate = untrusted_certificate


class AgentTransport(Protocol):
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
        """`path` below the agent API's base URL; `extra_time` lengthens the wait for the
        answer (a long poll)."""
        ...

    async def aclose(self) -> None: ...


def _failure(exc: BaseException) -> TransportFailure:
    """`exc` as a `TransportFailure`, telling whether the server's certificate was refused."""
    untrusted = False
    cause: BaseException | None = exc
    while cause is not None and not untrusted:
        untrusted = isinstance(
            cause, ssl.SSLCertVerificationError | aiohttp.ClientConnectorCertificateError
        )
        cause = cause.__cause__ or cause.__context__
    return TransportFailure(f"{type(exc).__name__}: {exc}", untrusted_certificate=untrusted)


class AiohttpTransport:
    """Requests over one aiohttp session, opened on first use (it needs the running loop)."""

    def __init__(
        self, base_url: str, *, tls: ssl.SSLContext | bool, timeout: float, max_connections: int
    ) -> None:
        self._base = base_url
        self._tls = tls
        self.timeout = timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            ssl=self._tls,
            # Below `vulfix serve`'s 75 s keep-alive and common proxies' idle timeouts (60 s
            # and more): an idle connection is dropped here before the far end closes it
            # under a request.
            keepalive_timeout=30.0,
        )
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        return self._session

    def _timeout(self, extra_time: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(extra_time)
        if timeout is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self.timeout,
                sock_connect=self.timeout,
                sock_read=self.timeout + extra_time,
            )
            self._timeouts[extra_time] = timeout
        return timeout

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
        session = self._session or self._open()
        url = self._base + path + ("?" + urlencode(params) if params else "")
        try:
            async with session.request(
                method, url, data=body, headers=headers, timeout=self._timeout(extra_time)
            ) as response:
                content = await response.read()
                return HttpAnswer(response.status, response.headers, content)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _failure(exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


class HttpxTransport:
    """Requests through an `httpx.AsyncClient` whose base URL is the agent API's."""

    def __init__(self, client: httpx.AsyncClient, timeout: float) -> None:
        self.client = client
        self.timeout = timeout

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
        timeout = httpx.Timeout(self.timeout, read=self.timeout + extra_time)
        try:
            response = await self.client.request(
                method, path, content=body, params=params, headers=headers, timeout=timeout
            )
        except httpx.TransportError as exc:
            raise _failure(exc) from exc
        return HttpAnswer(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> HttpxTransport:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
