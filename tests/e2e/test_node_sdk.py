"""The official tencentcloud-sdk-nodejs, unchanged, against a real server.

The endpoint is given as `127.0.0.1:port`, so the Node SDK's two quirks are exercised: it
signs the host without its port, and it takes the credential scope's service from the
endpoint's first label ("127"). `make test` installs the SDK from the npm registry into
tests/node.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fleets import enroll_token, host, import_fleet, write_fleet
from tests.e2e.processes import ApiKey, ServerProcess
from vulfix.agent.client import AgentClient, http_client
from vulfix.agent_protocol import EnrollRequest

NODE_DIR = Path(__file__).parent.parent / "node"
MODES = [
    ("tc3-post", "POST", "TC3-HMAC-SHA256"),
    ("tc3-get", "GET", "TC3-HMAC-SHA256"),
    ("v1", "POST", "HmacSHA256"),
]


@pytest.fixture(scope="module")
def node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ApiKey]]:
    assert (NODE_DIR / "node_modules" / "tencentcloud-sdk-nodejs").is_dir(), (
        "make test installs the Node SDK"
    )
    directory = tmp_path_factory.mktemp("node")
    server = ServerProcess(directory, ("--rate-limit", "0")).start()
    key = server.create_key("node")
    quuids = [f"n{n}" for n in range(3)]
    fleet = write_fleet(
        directory / "fleet.json", [host(q, n) for n, q in enumerate(quuids)], {501: quuids}
    )
    import_fleet(server, "node", fleet)
    asyncio.run(_bring_agents_online(server, enroll_token(server, "node"), quuids))
    yield server, key
    server.stop()


async def _bring_agents_online(server: ServerProcess, token: str, quuids: list[str]) -> None:
    async with http_client(f"http://{server.endpoint}") as http:
        for quuid in quuids:
            facts = {"host_name": quuid, "host_ip": "10.0.0.1", "os_family": "debian"}
            request = EnrollRequest(
                enroll_token=token, quuid=quuid, snapshot_supported=True, **facts
            )
            await AgentClient(http).enroll(request)


def run_node(
    server: ServerProcess, key: ApiKey, calls: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    job = {
        "endpoint": server.endpoint,
        "secretId": key.secret_id,
        "secretKey": key.secret_key,
        "calls": calls,
    }
    command = ["node", str(NODE_DIR / "run_calls.js")]
    result = subprocess.run(
        command, input=json.dumps(job), capture_output=True, text=True, timeout=120, cwd=NODE_DIR
    )
    assert result.returncode == 0, result.stderr
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    return answers


@pytest.mark.parametrize(("mode", "method", "sign"), MODES, ids=[m[0] for m in MODES])
def test_the_six_actions_through_the_node_sdk(
    node_server: tuple[ServerProcess, ApiKey], mode: str, method: str, sign: str
) -> None:
    server, key = node_server
    quuid = {"tc3-post": "n0", "tc3-get": "n1", "v1": "n2"}[mode]

    def call(action: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"action": action, "params": params, "method": method, "sign": sign}

    create = {"CreateVulFixTaskQuuids": [{"Quuids": [quuid], "VulId": 501}], "SaveDays": 1}
    created = run_node(server, key, [call("CreateVulFix", create)])
    fix_id = created[0]["response"]["FixId"]
    answers = run_node(server, key, [
        call("DescribeVulFixStatus", {"FixId": fix_id}),
        call("DescribeCanFixVulMachine", {"VulIds": [501], "Quuids": [quuid]}),
        call("DescribeMachineSnapshot", {"Quuids": [quuid], "Type": 0, "Limit": 10, "Offset": 0}),
        call("RetryCreateSnapshot", {"FixId": fix_id, "Quuid": quuid, "Id": 999999}),
        call("RetryVulFix", {"FixId": fix_id, "Quuid": quuid, "VulId": 501}),
        call("DescribeVulFixStatus", {"FixId": 987654}),
        call("CreateVulFix", create),
    ])  # fmt: skip
    status, can_fix, snapshots, retry_snapshot, retry_fix, missing, again = answers
    assert status["response"]["FixId"] == fix_id and status["response"]["HostCnt"] == 1
    assert status["response"]["SnapshotList"][0]["Status"] == 0
    assert can_fix["response"]["VulInfo"][0]["HostList"][0]["IsSupportAutoFix"] == 5
    assert (
        snapshots["response"]["SnapshotCheck"] is False and snapshots["response"]["TotalCount"] == 0
    )
    assert retry_snapshot["code"] == "ResourceNotFound"
    assert retry_fix["code"] == "InvalidParameterValue"  # still waiting, not failed
    assert missing["code"] == "InvalidParameterValue" and missing["requestId"]
    assert again["code"] == "InvalidParameterValue"  # already being fixed


def test_node_sdk_errors_carry_code_message_and_request_id(
    node_server: tuple[ServerProcess, ApiKey],
) -> None:
    server, key = node_server
    wrong = ApiKey(key.account, key.app_id, key.secret_id, "not-the-secret")
    answers = run_node(server, wrong, [{"action": "DescribeVulFixStatus", "params": {"FixId": 1}}])
    assert answers[0]["code"] == "AuthFailure.SignatureFailure"
    english = run_node(
        server,
        key,
        [{"action": "DescribeVulFixStatus", "params": {"FixId": 424242}, "language": "en-US"}],
    )
    assert "424242" in english[0]["message"] and english[0]["message"].isascii()
