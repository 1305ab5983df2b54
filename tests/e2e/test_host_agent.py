"""`vulfix agent` as a real process fixing a (fake) host for a real `vulfix serve`.

The agent runs its real executors as real subprocesses; the programs they find first on PATH
are the fakes of `tests/agent/fakebin`, so nothing touches this machine's own packages.
Tasks are created and watched through the official Python SDK.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.common_client import CommonClient

from tests.agent.fake_host import FakeHost
from tests.e2e.fleets import enroll_token, import_fleet
from tests.e2e.processes import VULFIX, ServerProcess, wait_for
from tests.e2e.sdk_clients import common_client
from tests.e2e.tls import make_pki

VULNERABILITIES = [
    {"VulId": 701, "VulName": "OpenSSL heap overflow", "Level": "high", "CveIds": ["CVE-2026-0701"],
     "Packages": [{"Name": "openssl", "FixedVersion": "3.0.15-1"},
                  {"Name": "libssl3", "FixedVersion": "3.0.15-1"}]},
    {"VulId": 702, "VulName": "sudo chroot escape", "Level": "critical",
     "CveIds": ["CVE-2026-0702"], "Packages": [{"Name": "sudo", "FixedVersion": "1.9.16p2-1"}]},
    {"VulId": 703, "VulName": "rpcbind amplification", "Level": "medium",
     "CveIds": ["CVE-2026-0703"], "FixMethods": [0, 1], "Service": "rpcbind",
     "Packages": [{"Name": "rpcbind", "FixedVersion": "1.2.6-7"}]},
]  # fmt: skip
QUUIDS = ("q-fixed", "q-killed", "q-dry", "q-tls")


@dataclass
class Site:
    server: ServerProcess
    token: str
    api: CommonClient
    directory: Path

    def call(self, action: str, **params: Any) -> Any:
        return self.api.call_json(action, params)["Response"]

    def create(self, items: list[dict[str, Any]]) -> int:
        return int(self.call("CreateVulFix", CreateVulFixTaskQuuids=items, SaveDays=1)["FixId"])

    def finished(self, fix_id: int) -> Any:
        box: list[Any] = []

        def done() -> bool:
            box[:] = [self.call("DescribeVulFixStatus", FixId=fix_id)]
            return bool(box[0]["FixProgress"] == 100)

        wait_for(done, f"task {fix_id} to finish")
        return box[0]


@dataclass
class Agent:
    """One `vulfix agent` process for one fake host."""

    site: Site
    quuid: str
    snapshot: dict[str, Any] = field(default_factory=lambda: {"provider": "none"})
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root = self.site.directory / self.quuid
        self.root.mkdir()
        self.host = FakeHost(self.root)
        (self.root / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
        self.state_dir = self.root / "state"
        self.log_path = self.root / "agent.log"

    def start(self, *args: str) -> Agent:
        config = {
            "server": f"http://{self.site.server.endpoint}",
            "enroll_token": self.site.token,
            "quuid": self.quuid,
            "state_dir": str(self.state_dir),
            "os_release": str(self.root / "os-release"),
            "host_ip": "10.20.0.7",
            "command_timeout": 60.0,
            "snapshot": self.snapshot,
        }
        config_path = self.root / "agent.toml"
        config_path.write_text(toml(config))
        self.process = subprocess.Popen(
            [VULFIX, "agent", "--config", str(config_path), *args],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.host.env},
        )
        return self

    def wait_online(self) -> Agent:
        def online() -> bool:
            answer = self.site.call("DescribeCanFixVulMachine", VulIds=[701])
            hosts = {h["Quuid"]: h for v in answer["VulInfo"] for h in v["HostList"]}
            return bool(hosts[self.quuid]["AgentStatus"] == 1)

        wait_for(online, f"{self.quuid}'s agent to come online")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def ran(self, *prefix: str) -> list[list[str]]:
        return [argv for argv in self.host.invocations() if argv[: len(prefix)] == list(prefix)]


def toml(values: dict[str, Any]) -> str:
    """A flat TOML document with one table (enough for an agent configuration)."""
    lines, tables = [], []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append(
                f"[{key}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in value.items())
            )
        else:
            lines.append(f"{key} = {json.dumps(value)}\n")
    return "".join(lines) + "\n".join(tables)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("host-agent")
    server = ServerProcess(
        directory / "server", ("--rate-limit", "0"), env={"VULFIX_ENGINE_INTERVAL": "0.2"}
    ).start()
    key = server.create_key("acme")
    inventory = {
        "hosts": [{"Quuid": q, "OsFamily": "debian", "HostName": q} for q in QUUIDS],
        "vulnerabilities": VULNERABILITIES,
        "findings": [{"Quuid": q, "VulId": v["VulId"]} for q in QUUIDS for v in VULNERABILITIES],
    }
    (directory / "inventory.json").write_text(json.dumps(inventory))
    import_fleet(server, "acme", directory / "inventory.json")
    api = common_client(server.endpoint, key)
    yield Site(server, enroll_token(server, "acme"), api, directory)
    server.stop()


def vulnerable_debian(host: FakeHost) -> None:
    host.package("openssl", "3.0.13-1", available="3.0.15-1")
    host.package("libssl3", "3.0.13-1", available="3.0.15-1")
    # The mirror only has a build that is still below the fixed version.
    host.package("sudo", "1.9.15p5-1", available="1.9.15p5-3")
    host.package("rpcbind", "1.2.6-6")
    host.service("rpcbind")


def record(done: Any, vul_id: int) -> Any:
    (vulnerability,) = [v for v in done["VulFixList"] if v["VulId"] == vul_id]
    (host,) = vulnerability["HostList"]
    return host


def test_the_agent_snapshots_then_fixes_its_host_and_survives_a_server_restart(
    site: Site,
) -> None:
    agent = Agent(site, "q-fixed", {"provider": "lvm", "volume_group": "vg0",
                                     "logical_volume": "root", "size": "2G"})  # fmt: skip
    vulnerable_debian(agent.host)
    agent.host.lvm_volume("vg0/root")
    agent.start().wait_online()
    try:
        fix_id = site.create(
            [{"Quuids": ["q-fixed"], "VulId": 701}, {"Quuids": ["q-fixed"], "VulId": 702}]
        )
        done = site.finished(fix_id)
        (snapshot,) = done["SnapshotList"]
        assert snapshot["Status"] == 1 and snapshot["SnapshotId"].startswith("snap-")
        (lvcreate,) = agent.ran("lvcreate")
        assert lvcreate[:2] == ["lvcreate", "--snapshot"] and lvcreate[-1] == "vg0/root"
        assert record(done, 701)["Status"] == 2
        assert agent.host.installed("openssl") == ["3.0.15-1"]
        assert agent.host.installed("libssl3") == ["3.0.15-1"]
        upgrades = [argv for argv in agent.ran("apt-get") if "--only-upgrade" in argv]
        assert [argv[-2:] for argv in upgrades] == [["openssl", "libssl3"], ["-y", "sudo"]] or [
            argv[-1:] for argv in upgrades
        ] == [["libssl3"], ["sudo"]], upgrades
        sudo = record(done, 702)
        assert sudo["Status"] == 3
        assert sudo["FailReason"].startswith("still vulnerable: sudo")
        assert "1.9.15p5-3" in sudo["FailReason"] and "1.9.16p2-1" in sudo["FailReason"]
        log = site.call("DescribeVulFixHostLog", FixId=fix_id, Quuid="q-fixed", VulId=701)
        assert log["Status"] == 2 and log["ExitCode"] == 0
        assert "$ apt-get" in log["Output"] and "$ dpkg-query" in log["Output"]

        site.server.stop()
        site.server.start()  # same port and database: the agent carries on by itself
        fix_id = site.create([{"Quuids": ["q-fixed"], "VulId": 703, "FixMethod": 1}])
        done = site.finished(fix_id)
        assert record(done, 703)["Status"] == 2
        assert agent.host.current()["services"]["rpcbind"]["enabled"] == "disabled"
        assert agent.host.current()["services"]["rpcbind"]["active"] == "inactive"
        assert agent.ran("systemctl", "disable", "--now", "rpcbind")
    finally:
        agent.stop()
    assert agent.process is not None and agent.process.returncode == 0
    assert "vulfix agent stopped" in agent.log_path.read_text()


def test_a_killed_agent_reports_its_interrupted_job_and_a_retry_fixes_the_host(
    site: Site,
) -> None:
    agent = Agent(site, "q-killed")
    vulnerable_debian(agent.host)
    agent.host.hang("apt-get", 8, subcommand="install")
    agent.start().wait_online()
    fix_id = site.create([{"Quuids": ["q-killed"], "VulId": 701}])
    wait_for(lambda: bool(agent.ran("apt-get", "install")), "the upgrade to start")
    agent.kill()  # kill -9 in the middle of the upgrade
    agent.host.clear_faults()
    agent.start()
    try:
        done = site.finished(fix_id)
        failed = record(done, 701)
        assert (
            failed["Status"] == 3
            and "agent stopped while this job was running" in (failed["FailReason"])
        )
        assert len(agent.ran("apt-get", "install")) == 1, "the interrupted job was not re-run"
        site.call("RetryVulFix", FixId=fix_id, Quuid="q-killed", VulId=701)
        done = site.finished(fix_id)
        assert record(done, 701)["Status"] == 2
        assert agent.host.installed("openssl") == ["3.0.15-1"]
    finally:
        agent.stop()


def test_a_dry_run_reports_success_and_changes_nothing(site: Site) -> None:
    agent = Agent(site, "q-dry")
    vulnerable_debian(agent.host)
    before = agent.host.current()
    agent.start("--dry-run").wait_online()
    try:
        fix_id = site.create(
            [{"Quuids": ["q-dry"], "VulId": 701}, {"Quuids": ["q-dry"], "VulId": 703,
                                                    "FixMethod": 1}]
        )  # fmt: skip
        done = site.finished(fix_id)
        assert done["FixSuccessCnt"] == 1 and done["FixFailCnt"] == 0
        assert [record(done, v)["Status"] for v in (701, 703)] == [2, 2]
        log = site.call("DescribeVulFixHostLog", FixId=fix_id, Quuid="q-dry", VulId=701)
        assert "apt-get" in log["Output"] and "dry run" in log["Output"]
    finally:
        agent.stop()
    assert agent.host.current() == before
    assert agent.ran("apt-get") == [] and agent.ran("systemctl", "disable") == []
    assert "dry run: would run" in agent.log_path.read_text()


def test_the_agent_trusts_a_private_ca_only_when_given_it(site: Site) -> None:
    pki = make_pki(site.directory / "pki")
    tls = ServerProcess(
        site.directory / "tls-server", tls=(str(pki.cert_file), str(pki.key_file))
    ).start()
    try:
        token = enroll_token(tls, "acme")
        https = f"https://{tls.endpoint}"
        untrusting = Agent(Site(tls, token, site.api, site.directory), "q-tls")
        untrusting.start("--server", https)
        wait_for(
            lambda: "CERTIFICATE_VERIFY_FAILED" in untrusting.log_path.read_text(),
            "the unknown CA to be refused",
        )
        assert not (untrusting.state_dir / "state.json").exists()
        untrusting.stop()
        untrusting.start("--server", https, "--ca-file", str(pki.ca_file))
        wait_for(lambda: (untrusting.state_dir / "state.json").exists(), "enrolment over https")
        assert json.loads((untrusting.state_dir / "state.json").read_text())["quuid"] == "q-tls"
        untrusting.stop()
    finally:
        tls.stop()
