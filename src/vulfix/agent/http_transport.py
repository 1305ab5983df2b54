"""How an agent's requests reach the server: one small interface, two implementations.

`Http11Transport` (`agent/http11_transport.py`) is what agents use, real and simulated.
`HttpxTransport` wraps an `httpx.AsyncClient`, so that tests can drive the same
`AgentClient` into an ASGI app in-process (`httpx.ASGITransport`) or a scripted server
(`httpx.MockTransport`); a request through httpx costs ten times the CPU, which a simulated
fleet of thousands cannot afford.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

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


def as_transport_failure(exc: BaseException) -> TransportFailure:
    """`exc` as a `TransportFailure`, telling whether the server's certificate was refused."""
    untrusted = False
    cause: BaseException | None = exc
    while cause is not None and not untrusted:
        untrusted = isinstance(cause, ssl.SSLCertVerificationError)
        cause = cause.__cause__ or cause.__context__
    return TransportFailure(f"{type(exc).__name__}: {exc}", untrusted_certificate=untrusted)


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
            raise as_transport_failure(exc) from exc
        return HttpAnswer(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __aenter__(self) -> HttpxTransport:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
