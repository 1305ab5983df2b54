"""Real `vulfix` processes for end-to-end tests: the server, and CLI commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN_DIR = Path(sys.executable).parent
VULFIX = str(BIN_DIR / "vulfix")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Polls `check` until it holds, or fails the test naming what it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [VULFIX, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"vulfix {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


@dataclass
class ApiKey:
    account: str
    app_id: int
    secret_id: str
    secret_key: str


@dataclass
class ServerProcess:
    """`vulfix serve` on a free port with its own SQLite database."""

    state_dir: Path
    extra_args: tuple[str, ...] = ()
    tls: tuple[str, str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # A database shared with other replicas; by default, a SQLite file in `state_dir`.
    database: str | None = None

    @property
    def db_url(self) -> str:
        return self.database or f"sqlite:///{self.state_dir / 'vulfix.db'}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "server.log"

    def start(self) -> ServerProcess:
        self.start_process()
        self.wait_ready()
        return self

    def start_process(self) -> None:
        """Starts the server without waiting for it to be ready (see `wait_ready`)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            VULFIX,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            self.db_url,
        ]
        if self.tls:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*args, *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        scheme = "https" if self.tls else "http"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if (
                    httpx.get(
                        f"{scheme}://{self.endpoint}/healthz", timeout=1, verify=False
                    ).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        """SIGTERM, then insist the server shut down gracefully (uvicorn re-raises the signal
        once it has, so the exit status is -SIGTERM)."""
        assert self.process is not None and self.process.poll() is None, (
            "server died during the tests"
        )
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        assert status in (0, -signal.SIGTERM), status
        assert "vulfix stopped cleanly" in self.log_path.read_text(), self.log_path.read_text()[
            -2000:
        ]

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would end it: no shutdown, no clean-up."""
        assert self.process is not None and self.process.poll() is None, "server already dead"
        self.process.kill()
        assert self.process.wait(timeout=10) == -signal.SIGKILL

    def restart(self) -> ServerProcess:
        """Starts the server again, on the same port and database, once it has exited."""
        assert self.process is not None and self.process.poll() is not None, "still running"
        return self.start()

    def create_key(self, account: str, *, read_only: bool = False) -> ApiKey:
        args = ["keys", "create", "--db", self.db_url, "--account", account, "--json"]
        created: dict[str, Any] = json.loads(
            run_cli(*args, *(["--read-only"] if read_only else []), env=self.env).stdout
        )
        return ApiKey(
            created["Account"], created["AppId"], created["SecretId"], created["SecretKey"]
        )

    def keys(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("keys", *args, "--db", self.db_url, env=self.env)
