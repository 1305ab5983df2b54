"""The host side of the agent API: an HTTP client for `/agent/v1`, with bounded retries.

Transient failures (no connection, timeouts, 5xx, 429) are retried with exponential backoff
and jitter, then surface as `AgentUnavailable`; a refusal (any other 4xx) is `AgentApiError`
at once, since resending the same request cannot help. Every call is safe to resend: a report
is applied once by job id, a poll hands the same leased job out again, and an enrolment whose
answer was lost simply issues another host token.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import certifi
import httpx
import msgspec

from vulfix.agent.http11_transport import Http11Transport
from vulfix.agent.http_transport import (
    AgentTransport,
    HttpAnswer,
    HttpxTransport,
    TransportFailure,
)
from vulfix.agent_protocol import (
    AGENT_API_PATH,
    AgentError,
    EnrollRequest,
    EnrollResponse,
    Heartbeat,
    HeartbeatAck,
    JobEnvelope,
    JobReport,
    ReportAck,
)

DEFAULT_TIMEOUT = 10.0

Answer = TypeVar("Answer")
Sleep = Callable[[float], Awaitable[None]]


class AgentApiError(Exception):
    """The server refused the request (a 4xx other than 429, or an unreadable answer)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"agent API refused the request ({status} {error}): {message}")
        self.status = status
        self.error = error
        self.message = message


class AgentUnavailable(Exception):
    """The server stayed unreachable or failing through every retry."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, retry: int, rng: random.Random) -> float:
        """Backoff before retry number `retry` (0-based): half fixed, half random, so that a
        fleet that lost the server at once does not come back at once."""
        ceiling = min(self.max_delay, self.first_delay * 2.0**retry)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def http_client(
    base_url: str,
    *,
    ca_file: str | None = None,
    verify: ssl.SSLContext | bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AgentTransport:
    """The way to the agent API at `base_url`; one may be shared by many `AgentClient`s.

    TLS trusts certifi's CA bundle, as the official Python clients do, or `ca_file`; `verify`
    may instead be a ready `ssl.SSLContext` (shared by many clients, it is built once), or
    False. An httpx `transport` (an ASGI app in-process, a scripted server) is for tests.
    """
    base = base_url.rstrip("/") + AGENT_API_PATH
    if transport is not None:
        client = httpx.AsyncClient(base_url=base, transport=transport)
        return HttpxTransport(client, timeout)
    if isinstance(verify, ssl.SSLContext) and ca_file is None:
        tls = verify
    elif ca_file is not None or verify:
        tls = ssl.create_default_context(cafile=ca_file or certifi.where())
    else:  # verify=False: encrypted, but whoever answers is trusted
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    return Http11Transport(base, tls=tls, timeout=timeout, max_connections=max_connections)


def _retry_after(response: HttpAnswer) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


class AgentClient:
    """One host's conversation with the server. Holds its host token once enrolled."""

    def __init__(
        self,
        http: AgentTransport,
        *,
        host_token: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        owns_http: bool = False,
    ) -> None:
        self._http = http
        self.host_token = host_token
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._owns_http = owns_http

    @classmethod
    def connect(cls, base_url: str, **options: Any) -> AgentClient:
        """A client with its own connection pool (options as for `http_client`)."""
        return cls(http_client(base_url, **options), owns_http=True)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def enroll(self, request: EnrollRequest) -> EnrollResponse:
        response = await self._send("POST", "/enroll", msgspec.json.encode(request), auth=False)
        enrolled = self._decode(response, EnrollResponse)
        self.host_token = enrolled.host_token
        return enrolled

    async def heartbeat(self, running_job_id: int | None = None) -> HeartbeatAck:
        body = msgspec.json.encode(Heartbeat(running_job_id=running_job_id))
        return self._decode(await self._send("POST", "/heartbeat", body), HeartbeatAck)

    async def poll(self, wait: float) -> JobEnvelope | None:
        """The next job, waiting up to `wait` seconds on the server for one; None if none came."""
        response = await self._send("GET", "/jobs", params={"wait": f"{wait:g}"}, extra_time=wait)
        if response.status == 204:
            return None
        return self._decode(response, JobEnvelope)

    async def report(
        self, job_id: int, report: JobReport, *, take_next: bool = False, wait: float = 0.0
    ) -> ReportAck:
        """Delivers a job's report; with `take_next`, the answer also brings the host's next
        job if one is waiting (`ReportAck.next_job`), leased to this host as a poll would, and
        with `wait` the server waits up to that many seconds for one, as a poll would."""
        if wait > 0 and not take_next:
            raise ValueError("a report waits only for a next job it asks for (take_next)")
        body = msgspec.json.encode(report)
        params = {"next": "1"} if take_next else None
        if params is not None and wait > 0:
            params["wait"] = f"{wait:g}"
        path = f"/jobs/{job_id}/result"
        response = await self._send("POST", path, body, params=params, extra_time=wait)
        return self._decode(response, ReportAck)

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        params: dict[str, str] | None = None,
        auth: bool = True,
        extra_time: float = 0.0,
    ) -> HttpAnswer:
        headers = {"content-type": "application/json"} if body is not None else {}
        if auth:
            if self.host_token is None:
                raise AgentApiError(401, "not_enrolled", "enrol before calling the agent API")
            headers["authorization"] = f"Bearer {self.host_token}"
        failure, pause = "", 0.0
        for attempt in range(self._retry.attempts):
            if attempt:
                await self._sleep(pause)
            asked = 0.0
            try:
                response = await self._http.request(
                    method, path, body=body, params=params, headers=headers, extra_time=extra_time
                )
            except TransportFailure as exc:
                failure = str(exc)
                if exc.untrusted_certificate:
                    break  # the same certificate will fail again: say so now, not in a minute
            else:
                if response.status < 400:
                    return response
                if response.status != 429 and response.status < 500:
                    raise self._refusal(response)
                failure = f"HTTP {response.status}"
                asked = min(_retry_after(response) or 0.0, self._retry.max_delay)
            # Drawn only after a failure: a simulated fleet sends thousands of requests a
            # second, and nearly all of them succeed.
            pause = max(self._retry.delay(attempt, self._rng), asked)
        raise AgentUnavailable(
            f"{method} {AGENT_API_PATH}{path} failed {attempt + 1} times; last: {failure}"
        )

    @staticmethod
    def _refusal(response: HttpAnswer) -> AgentApiError:
        try:
            error = msgspec.json.decode(response.content, type=AgentError)
        except msgspec.DecodeError:
            return AgentApiError(response.status, "http_error", response.text[:200])
        return AgentApiError(response.status, error.error, error.message)

    @staticmethod
    def _decode(response: HttpAnswer, answer: type[Answer]) -> Answer:
        try:
            return msgspec.json.decode(response.content, type=answer)
        except msgspec.DecodeError as exc:
            raise AgentApiError(response.status, "malformed_response", str(exc)) from exc
