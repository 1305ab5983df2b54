"""Two accounts with same-shaped fleets on one `vulfix serve` (log at DEBUG), for the
isolation tests: simulated agents for most hosts, a few hosts driven by hand over HTTP."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.fleets import VULNERABILITIES, enroll_token, host, import_fleet, start_agents
from tests.e2e.processes import VULFIX, ApiKey, ServerProcess
from tests.signed_requests import Signer

AGENT_API = "/agent/v1"


@dataclass
class Account:
    name: str
    key: ApiKey
    token: str
    simulated: list[str]
    manual: list[str]
    # Filled in by the fixture: the finished task, its snapshot record Ids, the host tokens of
    # the hand-driven hosts.
    fix_id: int = 0
    snapshot_ids: dict[str, int] = field(default_factory=dict)
    host_tokens: dict[str, str] = field(default_factory=dict)


@dataclass
class Site:
    server: ServerProcess
    a: Account
    b: Account
    agents: list[subprocess.Popen[bytes]]
    http: httpx.Client
    # Tokens the tests make along the way, for the log check.
    secrets: list[str] = field(default_factory=list)

    @property
    def agents_log(self) -> Path:
        return self.server.state_dir / "agents.log"

    @property
    def real_agent_log(self) -> Path:
        return self.server.state_dir / "real-agent.log"

    def call(self, account: Account, action: str, **params: Any) -> tuple[int, dict[str, Any]]:
        """A hand-signed TC3 call: the HTTP status and the whole `Response`."""
        raw = Signer(
            account.key.secret_id, account.key.secret_key, host=self.server.endpoint, action=action
        ).tc3_post(json.dumps(params).encode())
        answer = self.http.request(raw.method, raw.path, headers=raw.headers, content=raw.body)
        response: dict[str, Any] = answer.json()["Response"]
        return answer.status_code, response

    def ok(self, account: Account, action: str, **params: Any) -> dict[str, Any]:
        status, response = self.call(account, action, **params)
        assert status == 200 and "Error" not in response, response
        return response

    def agent(self, method: str, path: str, host_token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {host_token}"}
        return self.http.request(method, AGENT_API + path, headers=headers, **kwargs)

    def enrol(self, token: str, quuid: str) -> httpx.Response:
        facts = {
            "enroll_token": token,
            "quuid": quuid,
            "host_name": f"{quuid}-host",
            "host_ip": "10.30.0.1",
            "os_family": "debian",
            "snapshot_supported": True,
            "machine_type": "CVM",
        }
        return self.http.post(AGENT_API + "/enroll", json=facts)


def write_document(path: Path, quuids: list[str], findings: dict[int, list[str]]) -> Path:
    wanted = {vul_id for vul_id, hosts in findings.items() if hosts}
    document = {
        "hosts": [host(q, n) for n, q in enumerate(quuids)],
        "vulnerabilities": [v for v in VULNERABILITIES if v["VulId"] in wanted],
        "findings": [{"Quuid": q, "VulId": v} for v, hosts in findings.items() for q in hosts],
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def open_account(
    site_dir: Path,
    server: ServerProcess,
    name: str,
    findings: dict[int, list[str]],
    simulated: list[str],
    manual: list[str],
) -> tuple[Account, subprocess.Popen[bytes]]:
    """Imports the account's fleet, enrols its hand-driven hosts later, starts its agents."""
    inventory = write_document(site_dir / f"{name}.json", simulated + manual, findings)
    agent_hosts = write_document(
        site_dir / f"{name}-agents.json",
        simulated,
        {v: [q for q in hosts if q in simulated] for v, hosts in findings.items()},
    )
    import_fleet(server, name, inventory)
    account = Account(name, server.create_key(name), enroll_token(server, name), simulated, manual)
    agents = start_agents(
        server, account.token, agent_hosts, site_dir / "agents.log", "--speed", "50", "--seed", "7"
    )
    return account, agents


def start_real_agent(server: ServerProcess, token: str, quuid: str) -> subprocess.Popen[bytes]:
    """`vulfix agent --dry-run --log-level DEBUG` for one imported host, logging beside the
    server's log."""
    root = server.state_dir / quuid
    root.mkdir()
    (root / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    settings = {
        "server": f"http://{server.endpoint}",
        "enroll_token": token,
        "quuid": quuid,
        "state_dir": str(root / "state"),
        "os_release": str(root / "os-release"),
        "host_ip": "10.30.0.9",
    }
    config = root / "agent.toml"
    config.write_text(
        "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
        + '[snapshot]\nprovider = "none"\n'
    )
    return subprocess.Popen(
        [VULFIX, "agent", "--config", str(config), "--dry-run", "--log-level", "DEBUG"],
        stdout=(server.state_dir / "real-agent.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
