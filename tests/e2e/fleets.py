"""Inventory documents for end-to-end tests, and the simulated agents that serve them."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from tencentcloud.common.common_client import CommonClient

from tests.e2e.processes import VULFIX, ApiKey, ServerProcess, run_cli, wait_for
from tests.e2e.sdk_clients import common_client

VULNERABILITIES = [
    {"VulId": 501, "VulName": "OpenSSL heap overflow", "VulCategory": 4, "Level": "high",
     "CveIds": ["CVE-2026-0501"], "Packages": [{"Name": "openssl", "FixedVersion": "3.0.15-1"}]},
    {"VulId": 502, "VulName": "sudo chroot escape", "VulCategory": 4, "Level": "critical",
     "CveIds": ["CVE-2026-0502"], "Packages": [{"Name": "sudo", "FixedVersion": "1.9.16p2-1"}]},
    {"VulId": 503, "VulName": "rpcbind amplification", "VulCategory": 4, "Level": "medium",
     "CveIds": ["CVE-2026-0503"], "FixMethods": [0, 1], "Service": "rpcbind",
     "Packages": [{"Name": "rpcbind", "FixedVersion": "1.2.6-7"}]},
    {"VulId": 504, "VulName": "Kernel privilege escalation", "VulCategory": 4, "Level": "high",
     "CveIds": ["CVE-2026-0504"],
     "Packages": [{"Name": "linux-image-amd64", "FixedVersion": "6.1.119-1"}],
     "Kbs": [{"KbId": 9001, "KbNumber": "KB9001", "KbName": "Kernel update 1", "PreKbList": []},
             {"KbId": 9002, "KbNumber": "KB9002", "KbName": "Kernel update 2",
              "PreKbList": ["KB9001"]}]},
]  # fmt: skip


def host(quuid: str, index: int, machine_type: str = "CVM") -> dict[str, object]:
    return {
        "Quuid": quuid,
        "HostName": f"{quuid}-host",
        "HostIp": f"10.9.{index // 256}.{index % 256}",
        "OsFamily": "debian",
        "MachineType": machine_type,
        "Tags": ["e2e"],
    }


def write_fleet(path: Path, hosts: list[dict[str, object]], findings: dict[int, list[str]]) -> Path:
    document = {
        "hosts": hosts,
        "vulnerabilities": VULNERABILITIES,
        "findings": [{"Quuid": q, "VulId": v} for v, quuids in findings.items() for q in quuids],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def import_fleet(server: ServerProcess, account: str, path: Path) -> None:
    run_cli(
        "import", "--db", server.db_url, "--account", account, str(path), "--json", env=server.env
    )


def enroll_token(server: ServerProcess, account: str) -> str:
    created = run_cli(
        "enroll-token",
        "create",
        "--db",
        server.db_url,
        "--account",
        account,
        "--json",
        env=server.env,
    )
    token: str = json.loads(created.stdout)["Token"]
    return token


def start_agents(
    server: ServerProcess,
    token: str,
    inventory: Path,
    log: Path,
    *options: str,
    heartbeat_interval: float | None = 2,
) -> subprocess.Popen[bytes]:
    """`vulfix simulate` for the hosts of `inventory`; `heartbeat_interval=None` keeps the
    server's pacing (polls that wait 25 s)."""
    pacing = (
        [] if heartbeat_interval is None else ["--heartbeat-interval", f"{heartbeat_interval:g}"]
    )
    return subprocess.Popen(
        [VULFIX, "simulate", "--server", f"http://{server.endpoint}", "--enroll-token", token,
         "--inventory", str(inventory), *pacing, *options],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_agents(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def fleet_at_work(
    server: ServerProcess,
    key: ApiKey,
    fleet: Path,
    log: Path,
    *options: str,
    hosts: int,
    heartbeat_interval: float | None = 2,
    online_timeout: float = 60,
) -> Iterator[subprocess.Popen[bytes]]:
    """`fleet` imported into `key`'s account and its simulated agents started (`options` for
    `vulfix simulate`), once `hosts` of them are online; the agents stop on leaving."""
    import_fleet(server, key.account, fleet)
    agents = start_agents(
        server, enroll_token(server, key.account), fleet, log, *options,
        heartbeat_interval=heartbeat_interval,
    )  # fmt: skip
    try:
        wait_online(common_client(server.endpoint, key), hosts, timeout=online_timeout)
        yield agents
    finally:
        stop_agents(agents)


def wait_online(api: CommonClient, hosts: int, *, vul_id: int = 501, timeout: float = 60) -> None:
    """Waits until `hosts` of the hosts affected by `vul_id` have their agent online."""

    def online() -> bool:
        answer: dict[str, Any] = api.call_json("DescribeCanFixVulMachine", {"VulIds": [vul_id]})
        found = answer["Response"]["VulInfo"]
        return sum(h["AgentStatus"] == 1 for v in found for h in v["HostList"]) == hosts

    wait_for(online, f"{hosts} agents online", timeout)


def enroll_by_hand(endpoint: str, token: str, quuid: str) -> dict[str, str]:
    """Enrols `quuid` through the agent API as an agent would; returns its bearer header."""
    enrolled = httpx.post(
        f"http://{endpoint}/agent/v1/enroll",
        json={"enroll_token": token, "quuid": quuid, "host_name": f"{quuid}-host",
              "host_ip": "10.9.0.1", "os_family": "debian", "snapshot_supported": True},
    )  # fmt: skip
    assert enrolled.status_code == 200, enrolled.text
    return {"authorization": f"Bearer {enrolled.json()['host_token']}"}
