"""PostgreSQL goes away under load, and comes back.

`vulfix serve` reaches its database through a `TcpProxy`. Stopped, the proxy refuses new
connections and resets open ones, which is what a stopped PostgreSQL looks like to a client;
frozen, its open connections carry nothing more (a half-open link). Meanwhile official-SDK
clients call actions in a loop and simulated agents work through a fix task.

While the database is away every API answer is `InternalError.MainDBFail` within 2 s (an
HTTP 200 envelope, never a hang), the agent API answers 503 with Retry-After and the agents
back off. Once it returns, calls succeed again within 5 s without a restart, the task
completes, and every report the agents made was applied exactly once. A frozen link is only
noticed when a statement times out, so its calls answer within such timeouts instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tests.e2e.crash_recovery import assert_applied_once, stop_and_summarise
from tests.e2e.fleets import (
    enroll_token,
    host,
    import_fleet,
    start_agents,
    wait_online,
    write_fleet,
)
from tests.e2e.processes import ApiKey, ServerProcess, run_cli, wait_for
from tests.e2e.sdk_clients import common_client
from tests.services import fresh_postgres_database
from tests.tcp_proxy import TcpProxy
from vulfix.store.database import STATEMENT_TIMEOUT

HOSTS = [f"dbo-{n:02d}" for n in range(20)]
# A host without an agent: the load's CreateVulFix targets it, not the task under watch.
DECOY = "dbo-decoy"
ANSWER_BOUND = 2.0
RECOVERY_BOUND = 5.0
OUTAGE_SECONDS = 6.0
# The first second of an outage still carries the requests that were in flight.
SETTLING = 1.0
LOAD_THREADS = 4
# A silent link is only noticed when a statement times out, and a call of two transactions
# (the key lookup, then the action) can meet two connections the freeze caught.
FROZEN_BOUND = 2 * STATEMENT_TIMEOUT + ANSWER_BOUND
MAIN_DB_FAIL = "InternalError.MainDBFail"


class ProxyLoop:
    """TcpProxies served by an event loop of their own, on a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=10)

    def freeze(self, proxy: TcpProxy) -> None:
        async def freeze() -> None:
            proxy.freeze()

        self.run(freeze())

    def close(self, *proxies: TcpProxy) -> None:
        for proxy in proxies:
            self.run(proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class RequestCounter:
    """Counts agent API requests in the bytes agents send (one request line each)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, data: bytes) -> None:
        self.count += data.count(b" /agent/v1/")

    def rate(self, seconds: float) -> float:
        """Requests per second over the next `seconds` (a measurement, not a wait)."""
        before = self.count
        time.sleep(seconds)
        return (self.count - before) / seconds


@dataclass
class Deployment:
    server: ServerProcess
    database: str
    loop: ProxyLoop
    db_proxy: TcpProxy
    agent_relay: TcpProxy
    agent_requests: RequestCounter
    key: ApiKey
    token: str
    directory: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("database-outage")
    with fresh_postgres_database() as database:
        real = make_url(database)
        env = {"VULFIX_MASTER_KEY": Fernet.generate_key().decode()}
        run_cli("db", "upgrade", "--db", database, env=env)  # through the real port
        loop = ProxyLoop()
        db_proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        loop.run(db_proxy.start())
        proxied = real.set(port=db_proxy.port).render_as_string(hide_password=False)
        env |= {"VULFIX_ENGINE_INTERVAL": "0.2", "VULFIX_RATE_LIMIT": "0"}
        server = ServerProcess(directory / "server", env=env, database=proxied).start()
        counter = RequestCounter()
        agent_relay = TcpProxy("127.0.0.1", server.port, tap=counter)
        loop.run(agent_relay.start())
        try:
            key = server.create_key("acme")
            fleet = [host(q, n) for n, q in enumerate([*HOSTS, DECOY])]
            inventory = write_fleet(
                directory / "fleet.json", fleet, {501: HOSTS, 502: [*HOSTS, DECOY]}
            )
            import_fleet(server, "acme", inventory)
            yield Deployment(
                server, database, loop, db_proxy, agent_relay, counter, key,
                enroll_token(server, "acme"), directory,
            )  # fmt: skip
        finally:
            # Whatever a test left, the server stops with its database there.
            loop.run(db_proxy.stop())
            loop.run(db_proxy.start())
            server.stop()
            loop.close(db_proxy, agent_relay)
        # No failure went unmapped (the API logs those with a traceback), none killed the
        # engine loop, and the shutdown was clean.
        assert "Traceback" not in server.log_path.read_text(), server.log_path.read_text()[-3000:]


@dataclass(frozen=True)
class Call:
    action: str
    started: float
    ended: float
    code: str


@dataclass
class Load:
    """Threads calling actions through the official SDK until stopped; every answer kept."""

    deployment: Deployment
    fix_id: int
    calls: list[Call] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(LOAD_THREADS)]
        for thread in self.threads:
            thread.start()

    def _run(self, n: int) -> None:
        sdk = common_client(self.deployment.server.endpoint, self.deployment.key)
        requests: list[tuple[str, dict[str, Any]]] = [
            ("DescribeVulFixStatus", {"FixId": self.fix_id}),
            ("DescribeCanFixVulMachine", {"VulIds": [501, 502]}),
            ("DescribeVulFixStatus", {"VulId": 501}),
            (
                "CreateVulFix",
                {"CreateVulFixTaskQuuids": [{"Quuids": [DECOY], "VulId": 502}], "SaveDays": 1},
            ),
        ]
        turn = n
        while not self.stop.is_set():
            action, params = requests[turn % len(requests)]
            turn += 1
            started = time.monotonic()
            try:
                sdk.call_json(action, params)
                code = "Success"
            except TencentCloudSDKException as error:
                code = str(error.get_code())
            self.calls.append(Call(action, started, time.monotonic(), code))

    def finish(self) -> list[Call]:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return self.calls


def call(deployment: Deployment, action: str, **params: Any) -> dict[str, Any]:
    sdk = common_client(deployment.server.endpoint, deployment.key)
    answer: dict[str, Any] = sdk.call_json(action, params)["Response"]
    return answer


def served(deployment: Deployment) -> bool:
    """The API reached the database: any answer but an internal error."""
    try:
        call(deployment, "DescribeVulFixStatus", VulId=501)
    except TencentCloudSDKException as error:
        return not str(error.get_code()).startswith("InternalError")
    return True


def test_a_stopped_database_answers_main_db_fail_fast_and_nothing_is_lost(
    deployment: Deployment,
) -> None:
    log = deployment.directory / "agents.log"
    inventory = deployment.directory / "agents.json"
    inventory.write_text(json.dumps({"hosts": [host(q, n) for n, q in enumerate(HOSTS)]}))
    # The agents speak to the server through a relay that counts their requests.
    relay = dataclasses.replace(deployment.server, port=deployment.agent_relay.port)
    agents = start_agents(relay, deployment.token, inventory, log, "--speed", "2", "--seed",
                          "11", heartbeat_interval=1)  # fmt: skip
    try:
        wait_online(common_client(deployment.server.endpoint, deployment.key), len(HOSTS))
        fix_id = call(
            deployment, "CreateVulFix",
            CreateVulFixTaskQuuids=[{"Quuids": HOSTS, "VulId": 501}], SaveDays=1,
        )["FixId"]  # fmt: skip
        load = Load(deployment, fix_id)
        wait_for(
            lambda: call(deployment, "DescribeVulFixStatus", FixId=fix_id)["SnapshotProgress"] > 0,
            "the first snapshots",
        )
        rate_before = deployment.agent_requests.rate(3.0)

        deployment.loop.run(deployment.db_proxy.stop())
        down_at = time.monotonic()
        time.sleep(SETTLING)
        rate_during = deployment.agent_requests.rate(OUTAGE_SECONDS - SETTLING)
        agent_answer = httpx.post(
            f"http://{deployment.server.endpoint}/agent/v1/enroll",
            json={"enroll_token": deployment.token, "quuid": HOSTS[0], "host_name": "h",
                  "host_ip": "10.9.0.0", "os_family": "debian", "snapshot_supported": True},
        )  # fmt: skip
        deployment.loop.run(deployment.db_proxy.start())
        up_at = time.monotonic()

        wait_for(lambda: served(deployment), "the API to reach the database", 30)
        recovered = time.monotonic() - up_at
        wait_for(
            lambda: any(c.started > up_at + RECOVERY_BOUND + 1 for c in load.calls),
            "the load to call on after the recovery",
        )
        calls = load.finish()
        wait_for(
            lambda: call(deployment, "DescribeVulFixStatus", FixId=fix_id)["FixProgress"] == 100,
            "the task to finish",
            60,
        )
    finally:
        summary = stop_and_summarise(agents, log)

    healthy = {c.code for c in calls if c.ended < down_at}
    overlapping = [c for c in calls if c.ended > down_at and c.started < up_at]
    inside = [c for c in overlapping if c.started >= down_at and c.ended <= up_at]
    after = [c for c in calls if c.started >= up_at + RECOVERY_BOUND]
    slowest = max(c.ended - c.started for c in overlapping)
    print(
        f"\noutage: {len(inside)} calls inside, slowest {slowest:.3f} s; recovered in "
        f"{recovered:.2f} s; agent requests/s before {rate_before:.1f}, during {rate_during:.1f}"
    )
    assert len(inside) > 20 and {c.action for c in inside} >= {"CreateVulFix"}, inside[:5]
    assert {c.code for c in inside} == {MAIN_DB_FAIL}, [c for c in inside if c.code][:5]
    assert {c.code for c in overlapping} <= healthy | {MAIN_DB_FAIL}, (healthy, overlapping)
    assert slowest < ANSWER_BOUND, sorted(overlapping, key=lambda c: c.started - c.ended)[:3]
    assert agent_answer.status_code == 503 and agent_answer.headers["retry-after"]
    assert agent_answer.json()["error"] == "storage_unavailable", agent_answer.text
    assert rate_during < rate_before / 2, (rate_before, rate_during)
    assert recovered < RECOVERY_BOUND
    assert after and not [c for c in after if c.code.startswith("InternalError")], after[:5]

    status = call(deployment, "DescribeVulFixStatus", FixId=fix_id)
    assert (status["FixSuccessCnt"], status["FixFailCnt"]) == (len(HOSTS), 0), status
    hosts = [h for v in status["VulFixList"] for h in v["HostList"]]
    assert len(hosts) == len(HOSTS) and {h["Status"] for h in hosts} == {2}, hosts
    assert_applied_once(deployment.database, fix_id, len(HOSTS), [summary])
    log_text = deployment.server.log_path.read_text()
    assert log_text.count("engine sweep: database unavailable") >= 1
    assert "engine sweep: database available again" in log_text


def test_a_frozen_database_link_answers_within_statement_timeouts(
    deployment: Deployment,
) -> None:
    fix_id = call(deployment, "DescribeVulFixStatus", VulId=501)["FixId"]
    load = Load(deployment, fix_id)
    try:
        wait_for(lambda: len(load.calls) > 40, "the load to warm the connection pool")
        deployment.loop.freeze(deployment.db_proxy)
        frozen_at = time.monotonic()
        wait_for(
            lambda: any(c.started > frozen_at + FROZEN_BOUND + 1 for c in load.calls),
            "calls long after the freeze",
        )
    finally:
        calls = load.finish()
        # Reset the frozen links: the server's shutdown closes its connections politely.
        deployment.loop.run(deployment.db_proxy.stop())
        deployment.loop.run(deployment.db_proxy.start())
    healthy = {c.code for c in calls if c.ended < frozen_at}
    since = [c for c in calls if c.ended > frozen_at]
    slowest = max(c.ended - c.started for c in since)
    late = [c for c in since if c.started > frozen_at + FROZEN_BOUND]
    print(f"\nfrozen link: {len(since)} calls, slowest {slowest:.3f} s")
    assert {c.code for c in since} <= healthy | {MAIN_DB_FAIL}, (healthy, since[:5])
    assert slowest < FROZEN_BOUND, sorted(since, key=lambda c: c.started - c.ended)[:3]
    # The dead connections are dropped as they time out; new ones work (the freeze spares them).
    assert late and not [c for c in late if c.code == MAIN_DB_FAIL], late[:5]
