"""What an operator sees: one JSON log line per request, Prometheus figures, health."""

from __future__ import annotations

import contextlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.e2e.fleets import enroll_by_hand, enroll_token
from tests.e2e.processes import ServerProcess
from tests.e2e.sdk_clients import client, common_client


def test_each_request_writes_one_structured_line_without_secrets(server: ServerProcess) -> None:
    key = server.create_key("observed")
    try:
        client(server.endpoint, key).call("DescribeVulFixStatus", {"FixId": 55555})
        raise AssertionError("expected an API error")
    except TencentCloudSDKException as error:
        request_id = error.get_request_id()
    line = _log_line(server, request_id)
    assert line["action"] == "DescribeVulFixStatus"
    assert line["account"] == "observed"
    assert line["code"] == "InvalidParameterValue"
    assert isinstance(line["duration_ms"], float | int)
    assert key.secret_key not in server.log_path.read_text()


def test_the_line_names_the_client_a_trusted_proxy_forwarded(server: ServerProcess) -> None:
    key = server.create_key("proxied")
    forwarded = {"X-Forwarded-For": "203.0.113.7"}  # from 127.0.0.1, trusted by default
    answer = common_client(server.endpoint, key).call_json(
        "DescribeCanFixVulMachine", {"VulIds": [1]}, headers=forwarded
    )
    line = _log_line(server, answer["Response"]["RequestId"])
    assert str(line["client"]).startswith("203.0.113.7:"), line


def _log_line(server: ServerProcess, request_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = server.log_path.read_text()
        lines = [json.loads(line) for line in text.splitlines() if request_id in line]
        if lines:
            assert len(lines) == 1
            return lines[0]
        time.sleep(0.05)
    raise AssertionError(f"no log line for {request_id}")


def test_metrics_count_requests_by_action_and_code(server: ServerProcess) -> None:
    key = server.create_key("metered")
    for _ in range(3):
        with contextlib.suppress(TencentCloudSDKException):
            client(server.endpoint, key).call("DescribeVulFixStatus", {})
    text = httpx.get(f"http://{server.endpoint}/metrics").text
    sample = 'vulfix_api_requests_total{action="DescribeVulFixStatus",code="MissingParameter"}'
    counts = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(sample)]
    assert counts and counts[0] >= 3
    assert "vulfix_api_request_duration_seconds_bucket" in text


def test_unknown_actions_do_not_grow_metric_labels(server: ServerProcess) -> None:
    key = server.create_key("label-guard")
    for n in range(5):
        with contextlib.suppress(TencentCloudSDKException):
            client(server.endpoint, key).call(f"Made{n}UpAction", {})
    text = httpx.get(f"http://{server.endpoint}/metrics").text
    assert "Made0UpAction" not in text


def test_health_answers_ok(server: ServerProcess) -> None:
    response = httpx.get(f"http://{server.endpoint}/healthz")
    assert response.status_code == 200 and response.text == "ok\n"


def test_sigterm_answers_held_polls_at_once_and_stops_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    bearer = enroll_by_hand(server.endpoint, enroll_token(server, "acme"), "held-1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        poll = pool.submit(
            httpx.get, f"http://{server.endpoint}/agent/v1/jobs?wait=25", headers=bearer, timeout=30
        )
        time.sleep(0.5)  # the poll reaches its wait
        assert not poll.done()
        server.stop()  # SIGTERM, and it asserts a clean exit
        answer = poll.result(timeout=5)
    assert answer.status_code == 204, "the held poll got its usual 'no job' answer"
    assert "graceful shutdown exceeded" not in server.log_path.read_text()
