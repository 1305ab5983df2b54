"""Three `vulfix serve` replicas on one PostgreSQL and one Redis, as docs/deploy.md runs them.

300 simulated hosts are spread over the replicas; a task is created through one replica and
polled round-robin through all of them. The task completes, every replica reports identical
figures, job wake-ups cross replicas, and the 20 requests/second limit holds for the whole
deployment, not per replica.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.fernet import Fernet
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.e2e.fleets import VULNERABILITIES, enroll_token, import_fleet, start_agents, stop_agents
from tests.e2e.processes import ServerProcess, wait_for
from tests.e2e.sdk_clients import common_client
from tests.services import fresh_postgres_database, redis_url

HOSTS = [f"r{n:03d}" for n in range(300)]
REPLICAS = 3
RATE_LIMIT = 20


@dataclass
class Deployment:
    replicas: list[ServerProcess]
    clients: list[CommonClient]

    def call(self, replica: int, action: str, **params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.clients[replica].call_json(action, params)["Response"]
        answer.pop("RequestId")
        return answer


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("replicas")
    with fresh_postgres_database() as database:
        env = {
            "VULFIX_MASTER_KEY": Fernet.generate_key().decode(),
            "VULFIX_REDIS": redis_url(),
            # Fresh databases reuse account ids: keep this run's rate windows to itself.
            "VULFIX_REDIS_PREFIX": f"vulfix-test-{secrets.token_hex(4)}:",
            "VULFIX_ENGINE_INTERVAL": "0.2",
            "VULFIX_RATE_LIMIT": str(RATE_LIMIT),
        }
        replicas = [
            ServerProcess(directory / f"replica-{n}", env=env, database=database)
            for n in range(REPLICAS)
        ]
        for replica in replicas:  # started together: each races to migrate the database
            replica.start_process()
        for replica in replicas:
            replica.wait_ready()
        first = replicas[0]
        key = first.create_key("acme")
        inventory = {
            "hosts": [{"Quuid": q, "OsFamily": "debian", "HostName": q} for q in HOSTS],
            "vulnerabilities": VULNERABILITIES[:1],
            "findings": [{"Quuid": q, "VulId": 501} for q in HOSTS],
        }
        (directory / "fleet.json").write_text(json.dumps(inventory))
        import_fleet(first, "acme", directory / "fleet.json")
        token = enroll_token(first, "acme")
        agents = []
        for n, replica in enumerate(replicas):
            part = directory / f"part-{n}.json"
            part.write_text(json.dumps({"hosts": inventory["hosts"][n::REPLICAS]}))
            # The server's own pacing: an idle agent's poll waits 25 s, so only a wake-up
            # crossing replicas brings it a job sooner.
            agents.append(
                start_agents(replica, token, part, directory / "agents.log", "--speed", "40",
                             "--seed", str(n), heartbeat_interval=None)
            )  # fmt: skip
        deployment = Deployment(replicas, [common_client(r.endpoint, key) for r in replicas])
        try:
            yield deployment
        finally:
            for process in agents:
                stop_agents(process)
            for replica in replicas:
                replica.stop()


def online_hosts(deployment: Deployment) -> int:
    answer = deployment.call(1, "DescribeCanFixVulMachine", VulIds=[501])
    return sum(h["AgentStatus"] == 1 for v in answer["VulInfo"] for h in v["HostList"])


def test_a_task_created_on_one_replica_completes_with_the_same_figures_everywhere(
    deployment: Deployment,
) -> None:
    wait_for(lambda: online_hosts(deployment) == len(HOSTS), "every agent online", 90)
    fix_id = deployment.call(
        0, "CreateVulFix", CreateVulFixTaskQuuids=[{"Quuids": HOSTS, "VulId": 501}], SaveDays=1
    )["FixId"]
    created = time.monotonic()
    polls = iter(range(10**9))

    def finished() -> bool:
        answer = deployment.call(next(polls) % REPLICAS, "DescribeVulFixStatus", FixId=fix_id)
        return bool(answer["FixProgress"] == 100)

    wait_for(finished, "the task to finish", 120)
    # Two thirds of the hosts hold 25 s polls on other replicas: without wake-ups crossing
    # replicas, many would not even have started their snapshot by now (7-8 s here).
    elapsed = time.monotonic() - created
    assert elapsed < 20, f"the task took {elapsed:.1f} s"
    answers = [deployment.call(n, "DescribeVulFixStatus", FixId=fix_id) for n in range(REPLICAS)]
    assert answers[0]["FixSuccessCnt"] == len(HOSTS) and answers[0]["FixFailCnt"] == 0
    assert answers[1] == answers[0] and answers[2] == answers[0]


def test_a_burst_spread_over_the_replicas_gets_at_most_the_limit(deployment: Deployment) -> None:
    def one(n: int) -> bool:
        try:
            deployment.call(n % REPLICAS, "DescribeVulFixStatus", VulId=501)
        except TencentCloudSDKException as exc:
            assert exc.get_code() == "RequestLimitExceeded", exc
            return False
        return True

    # The claim is about 100 calls within one second; on a loaded machine a burst can take
    # longer, and then it proves nothing either way: such a burst is tried again.
    for _attempt in range(3):
        time.sleep(1.1)  # an empty window
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=25) as pool:
            accepted = sum(pool.map(one, range(100)))
        elapsed = time.monotonic() - started
        if elapsed < 1.0:
            break
    assert elapsed < 1.0, f"the burst took {elapsed:.2f} s; the test needs it within 1 s"
    assert accepted == RATE_LIMIT
