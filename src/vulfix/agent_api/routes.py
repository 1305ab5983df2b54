"""The agent API (`/agent/v1`): enrol, heartbeat, long-poll for jobs, report results.

Starlette routes over the domain ports only: no database, no framework below this line.
Every refusal is a 4xx `AgentError`; a request refused for its body changes nothing (not even
the host's last-seen time), so a misbehaving agent cannot make the server store garbage.
A database outage is a 503 with Retry-After.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TypeVar
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from vulfix import agent_protocol as wire
from vulfix.agent_api import translation
from vulfix.agent_api.lane import AgentLane, LaneBusy
from vulfix.fixing.agent_port import (
    AgentTimings,
    EnrollmentRefused,
    HostIdentity,
    HostRegistry,
    JobAssignment,
    JobNotifier,
    JobSource,
    UnknownJob,
)
from vulfix.fixing.clock import Clock
from vulfix.fixing.errors import StorageUnavailable

ENROLL_BODY_LIMIT = 16 * 1024
HEARTBEAT_BODY_LIMIT = 4 * 1024
REPORT_BODY_LIMIT = 256 * 1024
MAX_POLL_WAIT = 60.0
# An oversized body is still read (and dropped) up to this size, so that a client which sends
# everything before reading gets the 413 rather than a reset connection.
DRAIN_LIMIT = 4 * 1024 * 1024
# Seconds an agent is asked to wait after a 503 (the database is away). Agents keep their
# reports and retry; this spreads a fleet's retries instead of having it poll a dead store.
UNAVAILABLE_RETRY_AFTER = 5
# After a 503 for a full agent lane: the database is there, only busy for a moment.
BUSY_RETRY_AFTER = 1

Body = TypeVar("Body")
Endpoint = Callable[[Request], Awaitable[Response]]

_encoder = msgspec.json.Encoder()
_enroll_decoder = msgspec.json.Decoder(wire.EnrollRequest)
_heartbeat_decoder = msgspec.json.Decoder(wire.Heartbeat)
_report_decoder = msgspec.json.Decoder(wire.JobReport)


class Refusal(Exception):
    """Ends a request with a 4xx `AgentError`."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


class _JsonResponse(Response):
    """Starlette's Response for a body already JSON, its two headers set as Starlette would
    set them, without working them out per answer (a tenth of a report's own Python)."""

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]


def _json(body: msgspec.Struct, status: int = 200) -> Response:
    return _JsonResponse(_encoder.encode(body), status)


def _answering_refusals(endpoint: Endpoint) -> Endpoint:
    @wraps(endpoint)
    async def answered(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Refusal as refusal:
            error = wire.AgentError(error=refusal.error, message=refusal.message)
            response = _json(error, refusal.status)
            if refusal.status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response
        except StorageUnavailable as exc:
            # Every call is safe to resend (a report applies once by job id): the agent keeps
            # its request and retries, as `AgentClient` does on any 5xx, after Retry-After.
            unavailable = wire.AgentError(error="storage_unavailable", message=str(exc))
            response = _json(unavailable, 503)
            response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
            return response
        except LaneBusy as exc:
            response = _json(wire.AgentError(error="server_busy", message=str(exc)), 503)
            response.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
            return response
        except ClientDisconnect:
            # The agent gave up (its timeout) before sending its whole body: nothing was read,
            # nothing applied, and nobody is left to answer; it will send the request again.
            return Response(status_code=400)

    return answered


def _header(request: Request, name: bytes) -> str | None:
    """The first value of a header (`name` in lower case, as ASGI servers give names): what
    `request.headers.get` answers, without building the headers' object for one look."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _too_large(limit: int) -> Refusal:
    return Refusal(413, "body_too_large", f"the body may be at most {limit} bytes")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = _header(request, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    # The ASGI messages themselves, as `request.stream()` reads them, without its generator.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT:
            break
        if not message.get("more_body", False):
            break
    if size > limit:
        raise _too_large(limit)
    # One chunk, as an agent's small request comes, is returned as it is, without a copy.
    return b"".join(chunks)


def _decode(body: bytes, decoder: msgspec.json.Decoder[Body]) -> Body:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise Refusal(422, "invalid_body", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise Refusal(400, "malformed_body", f"the body is not JSON: {exc}") from exc


def _query(request: Request) -> dict[str, str]:
    """The query's parameters, the last value of each: as Starlette's `query_params` reads
    them, in a fifth of the time for the plain `next=1&wait=20` of every agent request."""
    raw = request.scope["query_string"].decode("latin-1")
    if "%" in raw or "+" in raw:
        return dict(parse_qsl(raw, keep_blank_values=True))
    parameters = {}
    for pair in raw.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            parameters[name] = value
    return parameters


def _poll_wait(query: dict[str, str]) -> float:
    raw = query.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or wait < 0:
        raise Refusal(422, "invalid_wait", f"wait must be a number of seconds >= 0, not {raw!r}")
    return min(wait, MAX_POLL_WAIT)


def _take_next(query: dict[str, str]) -> bool:
    raw = query.get("next", "0")
    if raw not in ("0", "1"):
        raise Refusal(422, "invalid_next", f"next must be 0 or 1, not {raw!r}")
    return raw == "1"


def agent_routes(
    registry: HostRegistry,
    jobs: JobSource,
    notifier: JobNotifier,
    timings: AgentTimings,
    clock: Clock,
    lane: AgentLane,
) -> list[BaseRoute]:
    """The routes of `/agent/v1`, to be mounted there. A request's own reads and writes of
    the store run in `lane`; reading bodies, checking tokens and waiting for a job do not
    hold a place in it."""

    async def host_of(request: Request) -> HostIdentity:
        """The host the request's token names, without a place in the lane: under load the
        lane is full, and an agent's request would wait twice. The registry answers a token
        seen lately from memory, and reads the others together, one read at a time."""
        scheme, _, token = (_header(request, b"authorization") or "").partition(" ")
        token = token.strip()
        host = None
        if scheme.lower() == "bearer" and token:
            host = await registry.authenticate(token)
        if host is None:
            raise Refusal(401, "unauthorized", "a valid host token is required")
        return host

    @_answering_refusals
    async def enroll(request: Request) -> Response:
        enrolment = _decode(await _read_body(request, ENROLL_BODY_LIMIT), _enroll_decoder)
        try:
            async with lane.admitted():
                enrolled = await registry.enroll(
                    enrolment.enroll_token, translation.host_facts(enrolment), clock.now()
                )
        except EnrollmentRefused as exc:
            raise Refusal(403, "enrollment_refused", str(exc) or "enrolment refused") from exc
        return _json(
            wire.EnrollResponse(
                quuid=enrolled.quuid,
                host_token=enrolled.host_token,
                heartbeat_interval=timings.heartbeat_interval,
                poll_wait=timings.poll_wait,
            )
        )

    @_answering_refusals
    async def heartbeat(request: Request) -> Response:
        host = await host_of(request)
        body = await _read_body(request, HEARTBEAT_BODY_LIMIT)
        beat = _decode(body, _heartbeat_decoder) if body.strip() else wire.Heartbeat()
        job_id = beat.running_job_id
        if job_id is not None and not 0 < job_id <= translation.MAX_ID:
            raise Refusal(422, "invalid_body", "running_job_id must be a positive job id")
        now = clock.now()
        async with lane.admitted():
            await registry.touch(host, now)
            extended = job_id is not None and await jobs.extend_lease(host, job_id, now)
        return _json(wire.HeartbeatAck(lease_extended=extended))

    async def waited_for(host: HostIdentity, wait: float) -> JobAssignment | None:
        """The host's next job if one is queued for it within `wait` seconds, for a poll or a
        report that found none: handed over with the wake-up, or asked for when woken. Asked
        again only when woken: the notifier remembers a job queued between the question and
        the wait, and after a timeout the agent's next request asks first anyway."""
        woken = await notifier.wait(host.host_id, wait) if wait > 0 else False
        if isinstance(woken, JobAssignment):
            return woken
        if woken:
            async with lane.admitted():
                return await jobs.next_job(host, clock.now(), woken=True)
        return None

    @_answering_refusals
    async def next_job(request: Request) -> Response:
        wait = _poll_wait(_query(request))
        host = await host_of(request)
        async with lane.admitted():
            await registry.touch(host, clock.now())
            job = await jobs.next_job(host, clock.now())
        if job is None:
            job = await waited_for(host, wait)
        if job is None:
            return Response(status_code=204)
        return _json(translation.job_envelope(job))

    @_answering_refusals
    async def report(request: Request) -> Response:
        host = await host_of(request)
        job_id = translation.parse_id(request.path_params["job_id"])
        if job_id is None:
            raise Refusal(404, "unknown_job", "no such job for this host")
        report = _decode(await _read_body(request, REPORT_BODY_LIMIT), _report_decoder)
        try:
            result = translation.job_result(report)
        except translation.InvalidReport as exc:
            raise Refusal(422, "invalid_body", str(exc)) from exc
        query = _query(request)
        take_next = _take_next(query)
        wait = _poll_wait(query)
        if wait and not take_next:
            raise Refusal(422, "invalid_wait", "wait applies only to a report with next=1")
        async with lane.admitted():
            now = clock.now()
            await registry.touch(host, now)
            # With `next=1` the answer brings the host's next job, as its next poll would get
            # it: the report freed the host, and the agent asking for it saves a round trip
            # per job. Should this fail, the 503 makes the agent resend the report.
            try:
                if take_next:
                    outcome, next_job = await jobs.report_and_take_next(host, job_id, result, now)
                else:
                    outcome, next_job = await jobs.report(host, job_id, result, now), None
            except UnknownJob as exc:
                raise Refusal(404, "unknown_job", "no such job for this host") from exc
        # With `wait`, a report that finds no next job waits for one as a poll would: the
        # host's next request is then its next report, not a poll (one request per host less).
        if next_job is None:
            next_job = await waited_for(host, wait)
        return _json(translation.report_ack(outcome, next_job))

    # The most frequent first: `AgentDispatch` tries them in turn.
    return [
        Route("/jobs/{job_id}/result", report, methods=["POST"]),
        Route("/jobs", next_job, methods=["GET"]),
        Route("/heartbeat", heartbeat, methods=["POST"]),
        Route("/enroll", enroll, methods=["POST"]),
    ]
