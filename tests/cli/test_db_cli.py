from __future__ import annotations

import signal
import socket
import subprocess
import time

import httpx
from cryptography.fernet import Fernet

from tests.cli.conftest import VULFIX, RunVulfix
from vulfix.store.migrate import current_revision, head_revision


def test_current_before_and_after_upgrade(vulfix: RunVulfix, db_url: str) -> None:
    before = vulfix("db", "current", "--db", db_url)
    assert (before.returncode, before.stdout.strip()) == (0, "none")

    upgraded = vulfix("db", "upgrade", "--db", db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert str(head_revision()) in upgraded.stdout

    again = vulfix("db", "upgrade", "--db", db_url)
    assert again.returncode == 0, again.stderr

    after = vulfix("db", "current", "--db", db_url)
    assert (after.returncode, after.stdout.strip()) == (0, head_revision())


def test_password_is_not_echoed(vulfix: RunVulfix) -> None:
    result = vulfix("db", "upgrade", "--db", "postgresql://u:hunter2@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "hunter2" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_postgresql_current_before_and_after_upgrade(
    vulfix: RunVulfix, empty_postgres_url: str
) -> None:
    assert vulfix("db", "current", "--db", empty_postgres_url).stdout.strip() == "none"

    upgraded = vulfix("db", "upgrade", "--db", empty_postgres_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert vulfix("db", "upgrade", "--db", empty_postgres_url).returncode == 0

    after = vulfix("db", "current", "--db", empty_postgres_url)
    assert (after.returncode, after.stdout.strip()) == (0, head_revision())


def test_serve_migrates_a_postgresql_database_and_answers(
    cli_env: dict[str, str], empty_postgres_url: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = cli_env | {"VULFIX_MASTER_KEY": Fernet.generate_key().decode()}
    args = ["serve", "--db", empty_postgres_url, "--port", str(port), "--rate-limit", "0"]
    server = subprocess.Popen([str(VULFIX), *args], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "vulfix serve did not start"
                time.sleep(0.1)
        assert answer.text == "ok\n"
        assert current_revision(empty_postgres_url) == head_revision()
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
