"""Agents that saturate the database leave the API its connections.

`vulfix serve` on PostgreSQL holds at most 15 connections. Here 30 agents send a heartbeat at
once while the test holds a lock on every host row, so each heartbeat's write waits, holding
whatever connection it has. Meanwhile an operator asks DescribeCanFixVulMachine through the
official SDK: it must answer at once, not wait behind the agents for a connection (until
their statements time out, or the pool's wait does: InternalError.MainDBFail). Once the lock
goes, every heartbeat is applied.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
from cryptography.fernet import Fernet

from tests.e2e.fleets import VULNERABILITIES, enroll_by_hand, enroll_token, host, import_fleet
from tests.e2e.processes import ServerProcess, wait_for
from tests.e2e.sdk_clients import common_client
from tests.services import fresh_postgres_database
from vulfix.agent_api.lane import CONTROL_RESERVE
from vulfix.store.database import MAX_OVERFLOW, POOL_SIZE, STATEMENT_TIMEOUT

AGENTS = 2 * (POOL_SIZE + MAX_OVERFLOW)
LANE = POOL_SIZE + MAX_OVERFLOW - CONTROL_RESERVE
# Well under the first moment a blocked agent's connection comes free (STATEMENT_TIMEOUT).
ANSWER_BOUND = STATEMENT_TIMEOUT / 2


async def heartbeats(endpoint: str, bearers: list[dict[str, str]]) -> list[httpx.Response]:
    """One heartbeat per agent, all at once; a 503 is resent after its Retry-After, as
    `AgentClient` does."""
    async with httpx.AsyncClient(base_url=f"http://{endpoint}", timeout=30) as http:

        async def beat(bearer: dict[str, str]) -> httpx.Response:
            while True:
                answer = await http.post("/agent/v1/heartbeat", headers=bearer, json={})
                if answer.status_code != 503:
                    return answer
                await asyncio.sleep(float(answer.headers["retry-after"]))

        return await asyncio.gather(*(beat(bearer) for bearer in bearers))


def blocked_writes(database: str) -> int:
    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
        return int(row[0]) if row else 0


def last_seen(database: str) -> dict[str, datetime]:
    with psycopg.connect(database) as conn:
        return dict(conn.execute("SELECT quuid, last_seen_at FROM hosts").fetchall())


def test_the_api_answers_while_agents_wait_on_the_database(tmp_path: Path) -> None:
    quuids = [f"lane-{n:02d}" for n in range(AGENTS)]
    (tmp_path / "fleet.json").write_text(
        json.dumps(
            {
                "hosts": [host(q, n) for n, q in enumerate(quuids)],
                "vulnerabilities": VULNERABILITIES[:1],
                "findings": [{"Quuid": q, "VulId": 501} for q in quuids],
            }
        )
    )
    with fresh_postgres_database() as database:
        server = ServerProcess(
            tmp_path / "server",
            env={"VULFIX_MASTER_KEY": Fernet.generate_key().decode()},
            database=database,
        ).start()
        try:
            api = common_client(server.endpoint, server.create_key("acme"))
            import_fleet(server, "acme", tmp_path / "fleet.json")
            token = enroll_token(server, "acme")
            bearers = [enroll_by_hand(server.endpoint, token, q) for q in quuids]
            enrolled = last_seen(database)
            with psycopg.connect(database) as lock, ThreadPoolExecutor(1) as agents:
                lock.execute("SELECT id FROM hosts FOR UPDATE")
                beating: Future[list[httpx.Response]] = agents.submit(
                    asyncio.run, heartbeats(server.endpoint, bearers)
                )
                try:
                    # The lane fills: its agents' writes wait on the lock, each on a connection.
                    wait_for(lambda: blocked_writes(database) >= LANE, "the lane to fill", 10)
                    time.sleep(0.5)  # the rest of the agents queue for their turn
                    blocked = blocked_writes(database)
                    asked = time.monotonic()
                    answer = api.call_json("DescribeCanFixVulMachine", {"VulIds": [501]})
                    waited = time.monotonic() - asked
                finally:
                    lock.rollback()
                answers = beating.result(timeout=60)
            assert blocked == LANE
            # Not after the agents: they hold their connections until a statement times out,
            # and the pool would have the call wait for one of them.
            assert waited < ANSWER_BOUND
            assert len(answer["Response"]["VulInfo"][0]["HostList"]) == AGENTS
            assert [a.status_code for a in answers] == [200] * AGENTS
            beaten = last_seen(database)
            assert all(beaten[q] > enrolled[q] for q in quuids), (enrolled, beaten)
        finally:
            server.stop()
