"""Crash safety of the host side, with real processes: `kill -9` of a simulated agent in the
middle of its job."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from tencentcloud.common.common_client import CommonClient
from tencentcloud.cwp.v20180228 import models

from tests.e2e.crash_recovery import call, provision, query, reaped
from tests.e2e.fleets import host, start_agents, stop_agents, wait_online, write_fleet
from tests.e2e.processes import ServerProcess, wait_for
from tests.e2e.sdk_clients import client, common_client
from vulfix.fixing.transitions import REASON_LEASE_EXPIRED

LEASE_SECONDS = 3
SERVER_ENV = {
    "VULFIX_ENGINE_INTERVAL": "0.2",
    "VULFIX_LEASE_SECONDS": str(LEASE_SECONDS),
    "VULFIX_HEARTBEAT_INTERVAL": "1",
}


FIX_JOBS = "SELECT state, outcome FROM jobs WHERE fix_id = %s AND kind = 'fix' ORDER BY job_id"
HOST_TOKEN = "SELECT host_token_hash FROM hosts WHERE quuid = %s"


def test_a_killed_agent_loses_its_lease_and_retry_fixes_the_host_once_it_is_back(
    tmp_path: Path,
) -> None:
    """SIGKILL of the agent running a slow fix: once its 3 s lease runs out the record fails
    as "agent lost contact" and the job is closed as expired; a new agent enrols as the same
    host (by Quuid), and RetryVulFix through the official SDK gets the host fixed."""
    server = ServerProcess(tmp_path / "server", ("--rate-limit", "0"), env=SERVER_ENV).start()
    with reaped(server):
        # Bare metal: no snapshot, so the first job that takes time is the fix itself.
        fleet = write_fleet(tmp_path / "fleet.json", [host("v0", 0, "BM")], {501: ["v0"]})
        key, token = provision(server, "acme", fleet)
        api, cwp = common_client(server.endpoint, key), client(server.endpoint, key)
        log = tmp_path / "agents.log"
        # A fix of 60-200 s, heartbeating every second: its lease never runs out while it lives.
        slow = start_agents(server, token, fleet, log, "--speed", "0.05", heartbeat_interval=1)
        try:
            wait_online(api, 1)
            items = [{"Quuids": ["v0"], "VulId": 501}]
            fix_id = call(api, "CreateVulFix", CreateVulFixTaskQuuids=items, SaveDays=1)["FixId"]
            wait_for(lambda: query(server.db_url, FIX_JOBS, fix_id) == [("leased", "")], "the fix")
            slow.kill()
            slow.wait()
            killed = time.monotonic()
            record = fix_record(api, fix_id, lambda r: r["Status"] == 3, "the record to fail")
            failed_after = time.monotonic() - killed
            assert record["FailReason"] == REASON_LEASE_EXPIRED.format(seconds=LEASE_SECONDS)
            assert query(server.db_url, FIX_JOBS, fix_id) == [("expired", "expired")]
            wait_for(lambda: lease_expiries(server) == 1, "the expiry on /metrics")
            old_token = query(server.db_url, HOST_TOKEN, "v0")
            back = start_agents(server, token, fleet, log, "--speed", "40", heartbeat_interval=1)
            try:
                wait_for(lambda: query(server.db_url, HOST_TOKEN, "v0") != old_token, "enrolment")
                retry = models.RetryVulFixRequest()
                retry.from_json_string(json.dumps({"FixId": fix_id, "Quuid": "v0", "VulId": 501}))
                cwp.RetryVulFix(retry)
                fixed = fix_record(api, fix_id, lambda r: r["Status"] == 2, "the retried fix")
            finally:
                stop_agents(back)
        finally:
            if slow.poll() is None:
                stop_agents(slow)
        assert fixed["FailReason"] == ""
        status = call(api, "DescribeVulFixStatus", FixId=fix_id)
        assert (status["FixSuccessCnt"], status["FixFailCnt"], status["FixProgress"]) == (1, 0, 100)
        assert query(server.db_url, FIX_JOBS, fix_id) == [
            ("expired", "expired"),
            ("done", "success"),
        ]
        assert failed_after < LEASE_SECONDS + 10, failed_after
        print(f"\nagent kill: the record failed {failed_after:.1f} s after the kill")
        server.stop()


def lease_expiries(server: ServerProcess) -> float:
    metrics = httpx.get(f"http://{server.endpoint}/metrics").text
    found = [line for line in metrics.splitlines() if line.startswith("vulfix_engine_lease_exp")]
    return float(found[0].split()[-1]) if found else 0.0


def fix_record(api: CommonClient, fix_id: int, check: Any, what: str) -> dict[str, Any]:
    """The task's one fix record, once `check` holds for it."""
    box: list[dict[str, Any]] = []

    def found() -> bool:
        status = call(api, "DescribeVulFixStatus", FixId=fix_id)
        box[:] = [status["VulFixList"][0]["HostList"][0]]
        return bool(check(box[0]))

    wait_for(found, what, timeout=30)
    return box[0]
