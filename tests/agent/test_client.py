from __future__ import annotations

import random
from collections.abc import Callable

import httpx
import pytest

from vulfix.agent.client import (
    AgentApiError,
    AgentClient,
    AgentUnavailable,
    RetryPolicy,
    http_client,
)
from vulfix.agent_protocol import EnrollRequest, FixWork, JobReport

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """Answers requests from a script, recording them."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class Sleeps:
    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


def client_for(server: Server, sleeps: Sleeps, token: str | None = "vfh_t") -> AgentClient:
    http = http_client("http://vulfix.test/", transport=httpx.MockTransport(server))
    return AgentClient(
        http,
        host_token=token,
        retry=RetryPolicy(attempts=4, first_delay=0.5, max_delay=4.0),
        sleep=sleeps,
        rng=random.Random(1),
    )


ACK = httpx.Response(200, json={"applied": True, "detail": ""})
REPORT = JobReport(outcome="success", exit_code=0)


async def test_a_503_is_retried_with_growing_jittered_backoff_then_succeeds() -> None:
    server = Server(httpx.Response(503), httpx.Response(502), ACK)
    sleeps = Sleeps()

    ack = await client_for(server, sleeps).report(5, REPORT)

    assert ack.applied is True
    assert len(server.requests) == 3
    assert [r.content for r in server.requests] == [server.requests[0].content] * 3
    first, second = sleeps.taken
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0


async def test_connection_errors_are_retried() -> None:
    server = Server(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ACK)
    sleeps = Sleeps()
    assert (await client_for(server, sleeps).report(5, REPORT)).applied
    assert len(sleeps.taken) == 2


async def test_a_429_waits_at_least_what_retry_after_asks_up_to_the_cap() -> None:
    server = Server(
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(429, headers={"Retry-After": "3600"}),
        ACK,
    )
    sleeps = Sleeps()
    await client_for(server, sleeps).report(5, REPORT)
    assert sleeps.taken == [3.0, 4.0]


async def test_retries_are_bounded_and_end_in_agent_unavailable() -> None:
    server = Server(*[httpx.Response(500)] * 4)
    sleeps = Sleeps()
    with pytest.raises(AgentUnavailable, match="failed 4 times; last: HTTP 500"):
        await client_for(server, sleeps).heartbeat()
    assert len(server.requests) == 4
    assert len(sleeps.taken) == 3
    assert max(sleeps.taken) <= 4.0


async def test_a_refusal_is_raised_at_once_with_the_servers_error() -> None:
    refusal = httpx.Response(403, json={"error": "enrollment_refused", "message": "expired"})
    server = Server(refusal)
    sleeps = Sleeps()
    request = EnrollRequest(
        enroll_token="vfe_x",
        host_name="h",
        host_ip="10.0.0.1",
        os_family="ubuntu",
        snapshot_supported=True,
    )
    with pytest.raises(AgentApiError) as raised:
        await client_for(server, sleeps, token=None).enroll(request)
    assert (raised.value.status, raised.value.error, raised.value.message) == (
        403,
        "enrollment_refused",
        "expired",
    )
    assert sleeps.taken == []


async def test_a_refusal_without_an_agent_error_body_still_says_what_happened() -> None:
    server = Server(httpx.Response(404, text="Not Found"))
    with pytest.raises(AgentApiError, match="404 http_error"):
        await client_for(server, Sleeps()).report(5, REPORT)


async def test_enrol_keeps_the_host_token_for_later_calls() -> None:
    enrolled = httpx.Response(
        200,
        json={"quuid": "q-1", "host_token": "vfh_new", "heartbeat_interval": 30, "poll_wait": 25},
    )
    server = Server(enrolled, httpx.Response(200, json={"lease_extended": False}))
    client = client_for(server, Sleeps(), token=None)
    answer = await client.enroll(
        EnrollRequest(
            enroll_token="vfe_x",
            quuid="q-1",
            host_name="h",
            host_ip="10.0.0.1",
            os_family="ubuntu",
            snapshot_supported=False,
        )
    )
    await client.heartbeat(running_job_id=9)

    enrol_request, heartbeat_request = server.requests
    assert enrol_request.url == "http://vulfix.test/agent/v1/enroll"
    assert "authorization" not in enrol_request.headers
    assert heartbeat_request.headers["authorization"] == "Bearer vfh_new"
    assert heartbeat_request.content == b'{"running_job_id":9}'
    assert answer.quuid == "q-1" and client.host_token == "vfh_new"


async def test_poll_sends_the_wait_and_maps_204_to_none() -> None:
    job = {
        "job_id": 3,
        "fix_id": 1,
        "lease_seconds": 900,
        "work": {
            "type": "fix",
            "vul_id": 1,
            "vul_name": "v",
            "fix_method": 0,
            "packages": [],
            "service": "",
            "kb_id": 0,
            "kb_number": "",
            "kb_name": "",
            "pre_kb_list": [],
        },
    }
    server = Server(httpx.Response(204), httpx.Response(200, json=job))
    client = client_for(server, Sleeps())

    assert await client.poll(25) is None
    envelope = await client.poll(0.5)

    assert envelope is not None and envelope.job_id == 3 and isinstance(envelope.work, FixWork)
    assert [r.url.params["wait"] for r in server.requests] == ["25", "0.5"]
    # The long-poll's read timeout covers the wait on top of the usual limit.
    assert server.requests[0].extensions["timeout"]["read"] == 35.0


async def test_a_report_taking_the_next_job_can_wait_for_it_as_a_poll_does() -> None:
    server = Server(ACK, ACK, ACK)
    client = client_for(server, Sleeps())

    await client.report(5, REPORT)
    await client.report(6, REPORT, take_next=True)
    await client.report(7, REPORT, take_next=True, wait=20)

    assert [dict(r.url.params) for r in server.requests] == [
        {},
        {"next": "1"},
        {"next": "1", "wait": "20"},
    ]
    # Only the waiting report's read timeout covers its wait.
    assert [r.extensions["timeout"]["read"] for r in server.requests] == [10.0, 10.0, 30.0]


async def test_a_report_cannot_wait_for_a_job_it_does_not_ask_for() -> None:
    server = Server()
    with pytest.raises(ValueError, match="take_next"):
        await client_for(server, Sleeps()).report(5, REPORT, wait=20)
    assert server.requests == []


async def test_calls_before_enrolment_are_refused_locally() -> None:
    server = Server()
    with pytest.raises(AgentApiError, match="not_enrolled"):
        await client_for(server, Sleeps(), token=None).poll(1)
    assert server.requests == []


async def test_an_unreadable_answer_is_an_api_error() -> None:
    server = Server(httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(AgentApiError, match="malformed_response"):
        await client_for(server, Sleeps()).report(5, REPORT)
