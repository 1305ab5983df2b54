"""tccli, unchanged, over HTTPS (its `--endpoint` always uses https) with a private CA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import account_id_of, insert_bare_task
from tests.e2e.fleets import enroll_token, host, import_fleet, stop_agents, write_fleet
from tests.e2e.processes import VULFIX, ApiKey, ServerProcess
from tests.e2e.tls import Pki, make_pki

TCCLI = str(Path(sys.executable).parent / "tccli")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("tls"),
        ("--rate-limit", "0"),
        tls=(str(pki.cert_file), str(pki.key_file)),
    ).start()
    yield process
    process.stop()


def tccli(
    server: ServerProcess, key: ApiKey, pki: Pki, home: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(pki.sitecustomize_dir)}
    command = [TCCLI, "cwp", *args, "--secretId", key.secret_id, "--secretKey", key.secret_key,
               "--region", "ap-guangzhou", "--endpoint", server.endpoint]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_tccli_reads_a_task_over_https(tls_server: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    key = tls_server.create_key("tccli")
    fix_id = insert_bare_task(tls_server.db_url, account_id_of(tls_server.db_url, key.account))
    result = tccli(tls_server, key, pki, tmp_path, "DescribeVulFixStatus", "--FixId", str(fix_id))
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["FixId"] == fix_id
    assert answer["FixProgress"] == 100 and answer["VulFixList"] == []


def test_tccli_reports_an_api_error(tls_server: ServerProcess, pki: Pki, tmp_path: Path) -> None:
    key = tls_server.create_key("tccli-error")
    result = tccli(tls_server, key, pki, tmp_path, "DescribeVulFixStatus", "--FixId", "987654")
    assert result.returncode == 255
    assert "[TencentCloudSDKException] code:InvalidParameterValue" in result.stderr
    assert "requestId:" in result.stderr


def test_tccli_refuses_the_server_without_the_ca(tls_server: ServerProcess, tmp_path: Path) -> None:
    key = tls_server.create_key("tccli-untrusted")
    env = {**os.environ, "HOME": str(tmp_path)}
    command = [TCCLI, "cwp", "DescribeVulFixStatus", "--FixId", "1",
               "--secretId", key.secret_id, "--secretKey", key.secret_key,
               "--region", "ap-guangzhou", "--endpoint", tls_server.endpoint]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr + result.stdout


@pytest.fixture(scope="module")
def tls_fleet(
    tls_server: ServerProcess, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiKey]:
    """Three hosts whose simulated agents talk HTTPS to the server, trusting the test CA."""
    directory = tmp_path_factory.mktemp("tls-fleet")
    quuids = ["t0", "t1", "t2"]
    fleet = write_fleet(
        directory / "fleet.json", [host(q, n) for n, q in enumerate(quuids)], {501: quuids}
    )
    import_fleet(tls_server, "tls", fleet)
    token = enroll_token(tls_server, "tls")
    agents = subprocess.Popen(
        [VULFIX, "simulate", "--server", f"https://{tls_server.endpoint}", "--enroll-token", token,
         "--inventory", str(fleet), "--ca-file", str(pki.ca_file), "--speed", "5", "--seed", "1"],
        stdout=(directory / "agents.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    yield tls_server.create_key("tls")
    stop_agents(agents)


def test_tccli_drives_the_six_actions_and_waits_for_the_task(
    tls_server: ServerProcess, tls_fleet: ApiKey, pki: Pki, tmp_path: Path
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return tccli(tls_server, tls_fleet, pki, tmp_path, *args)

    deadline = time.monotonic() + 60
    while True:  # until the agents have enrolled over HTTPS
        can_fix = run("DescribeCanFixVulMachine", "--VulIds", "[501]")
        assert can_fix.returncode == 0, can_fix.stderr
        states = [
            h["IsSupportAutoFix"] for h in json.loads(can_fix.stdout)["VulInfo"][0]["HostList"]
        ]
        if states == [1, 1, 1] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == [1, 1, 1]
    snapshots = run(
        "DescribeMachineSnapshot",
        "--Quuids",
        '["t0"]',
        "--Type",
        "0",
        "--Limit",
        "10",
        "--Offset",
        "0",
    )
    assert json.loads(snapshots.stdout)["SnapshotCheck"] is False
    created = run(
        "CreateVulFix",
        "--CreateVulFixTaskQuuids",
        '[{"Quuids": ["t0", "t1", "t2"], "VulId": 501}]',
        "--SaveDays",
        "1",
    )
    assert created.returncode == 0, created.stderr
    fix_id = str(json.loads(created.stdout)["FixId"])
    waited = run(
        "DescribeVulFixStatus",
        "--FixId",
        fix_id,
        "--waiter",
        "{'expr':'FixProgress','to':100,'interval':1,'timeout':90}",
    )
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout[waited.stdout.index("{") :])["FixProgress"] == 100
    retry_snapshot = run(
        "RetryCreateSnapshot", "--FixId", fix_id, "--Quuid", "t0", "--Id", "999999"
    )
    assert "code:ResourceNotFound" in retry_snapshot.stderr
    retry_fix = run("RetryVulFix", "--FixId", "987654", "--Quuid", "t0", "--VulId", "501")
    assert "code:ResourceNotFound" in retry_fix.stderr
