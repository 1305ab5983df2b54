"""tccli, unchanged, over HTTPS (its `--endpoint` always uses https) with a private CA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import account_id_of, insert_bare_task
from tests.e2e.processes import ApiKey, ServerProcess
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
