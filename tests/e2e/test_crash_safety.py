"""Crash safety with real processes: `kill -9` of the server (SQLite, or one of two PostgreSQL
replicas) in the middle of a fix task (an agent's crash: test_crash_safety_agents.py).

The server's agents reach it through `AnswerLosingRelay`, which loses the server's answers
just before the kill: reports it applied were never acknowledged, so the agents must resend
them to the restarted server, which must recognise them by job id and not apply them again.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from tencentcloud.common.common_client import CommonClient

from tests.e2e.crash_recovery import (
    AgentSummary,
    AnswerLosingRelay,
    Crash,
    assert_applied_once,
    call,
    crash_mid_task,
    provision,
    reaped,
    stop_and_summarise,
)
from tests.e2e.fleets import host, start_agents, stop_agents, wait_online, write_fleet
from tests.e2e.processes import ServerProcess, wait_for
from tests.e2e.sdk_clients import common_client
from tests.services import fresh_postgres_database

ENGINE = {"VULFIX_ENGINE_INTERVAL": "0.2"}
# Jobs of 0.5-2.5 s (nominal 2-10 s); a poll at least every 5 s, so few heartbeats mid-job.
AGENT_OPTIONS = ("--speed", "4", "--seed", "7")
HEARTBEAT = 5.0


def finish(api: CommonClient, fix_id: int) -> tuple[dict[str, Any], float]:
    """Waits for the task to reach 100 %; returns its status and how long that took."""
    started, box = time.monotonic(), list[dict[str, Any]]()

    def done() -> bool:
        box[:] = [call(api, "DescribeVulFixStatus", FixId=fix_id)]
        return bool(box[0]["FixProgress"] == 100)

    wait_for(done, f"task {fix_id} to finish")
    return box[0], time.monotonic() - started


def through(relay: AnswerLosingRelay, server: ServerProcess) -> ServerProcess:
    """The server as agents behind `relay` address it (only its endpoint is used)."""
    return dataclasses.replace(server, port=relay.port)


def report(name: str, crash: Crash, finished_in: float, summaries: list[AgentSummary]) -> None:
    print(
        f"\n{name}: {crash.held} jobs done when answers stopped, {crash.killed} at the kill; "
        f"restart {crash.restart_seconds:.1f} s, task finished {finished_in:.1f} s later; "
        f"agents: {summaries}"
    )


def test_a_killed_sqlite_server_finishes_the_task_and_applies_each_report_once(
    tmp_path: Path,
) -> None:
    """SIGKILL mid-task with applied-but-unacknowledged reports in flight; after a restart
    the task completes, every resent report is answered "already applied", and each record
    has one job, done once, with one snapshot."""
    quuids = [f"k{n:02d}" for n in range(16)]
    server = ServerProcess(tmp_path / "server", ("--rate-limit", "0"), env=ENGINE).start()
    with reaped(server):
        relay = AnswerLosingRelay(server.port)
        fleet = write_fleet(
            tmp_path / "fleet.json", [host(q, n) for n, q in enumerate(quuids)], {501: quuids}
        )
        key, token = provision(server, "acme", fleet)
        api, log = common_client(server.endpoint, key), tmp_path / "agents.log"
        agents = start_agents(
            through(relay, server), token, fleet, log, *AGENT_OPTIONS, heartbeat_interval=HEARTBEAT
        )
        try:
            wait_online(api, len(quuids))
            items = [{"Quuids": quuids, "VulId": 501}]
            fix_id = call(api, "CreateVulFix", CreateVulFixTaskQuuids=items, SaveDays=1)["FixId"]
            crash = crash_mid_task(server, relay, fix_id, set(quuids))
            status, finished_in = finish(api, fix_id)
        finally:
            summary = stop_and_summarise(agents, log)
            relay.close()
        assert status["FixSuccessCnt"] == len(quuids) and status["FixFailCnt"] == 0
        assert summary.already_applied >= crash.unanswered >= 3, (summary, crash)
        assert_applied_once(server.db_url, fix_id, len(quuids), [summary])
        report("sqlite", crash, finished_in, [summary])
        server.stop()


def test_a_killed_postgresql_replica_rejoins_and_each_report_is_applied_once(
    tmp_path: Path,
) -> None:
    """Two replicas on one PostgreSQL database, agents split between them; replica A is
    SIGKILLed mid-task (its unanswered reports committed) while B carries on, and is
    restarted: the task completes with each report applied once, across both replicas."""
    on_a, on_b = [f"a{n:02d}" for n in range(10)], [f"b{n:02d}" for n in range(10)]
    quuids = on_a + on_b
    hosts = [host(q, n) for n, q in enumerate(quuids)]
    env = {**ENGINE, "VULFIX_MASTER_KEY": Fernet.generate_key().decode()}
    with fresh_postgres_database() as database:
        replicas = [
            ServerProcess(tmp_path / name, ("--rate-limit", "0"), env=env, database=database)
            for name in ("a", "b")
        ]
        for replica in replicas:  # together: each races to migrate the database
            replica.start_process()
        for replica in replicas:
            replica.wait_ready()
        with reaped(*replicas):
            a, b = replicas
            relay = AnswerLosingRelay(a.port)
            key, token = provision(
                b, "acme", write_fleet(tmp_path / "fleet.json", hosts, {501: quuids})
            )
            api = common_client(b.endpoint, key)
            agents = []
            for server, part in ((through(relay, a), hosts[: len(on_a)]), (b, hosts[len(on_a) :])):
                name = str(part[0]["Quuid"])[0]
                inventory = tmp_path / f"{name}.json"
                inventory.write_text(json.dumps({"hosts": part}))
                log = tmp_path / f"agents-{name}.log"
                process = start_agents(
                    server, token, inventory, log, *AGENT_OPTIONS, heartbeat_interval=HEARTBEAT
                )
                agents.append((process, log))
            try:
                wait_online(api, len(quuids))
                items = [{"Quuids": quuids, "VulId": 501}]
                fix_id = call(api, "CreateVulFix", CreateVulFixTaskQuuids=items, SaveDays=1)[
                    "FixId"
                ]
                crash = crash_mid_task(a, relay, fix_id, set(on_a))
                status, finished_in = finish(common_client(a.endpoint, key), fix_id)
            finally:
                for process, _log in agents:  # both, even if one's summary is wrong
                    stop_agents(process)
                relay.close()
            summaries = [stop_and_summarise(process, log) for process, log in agents]
            assert status["FixSuccessCnt"] == len(quuids) and status["FixFailCnt"] == 0
            assert summaries[0].already_applied >= crash.unanswered >= 3, (summaries, crash)
            assert summaries[1].unavailable == 0, "replica B's agents lost their server"
            assert_applied_once(database, fix_id, len(quuids), summaries)
            report("postgresql", crash, finished_in, summaries)
            for replica in replicas:
                replica.stop()
