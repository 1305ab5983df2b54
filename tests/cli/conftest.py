from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

VULFIX = Path(sys.executable).with_name("vulfix")

RunVulfix = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """No VULFIX_* from the caller, and a private user data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VULFIX_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    return env


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'vulfix.db'}"


@pytest.fixture
def vulfix(cli_env: dict[str, str]) -> RunVulfix:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VULFIX), *args],
            capture_output=True,
            text=True,
            env={**cli_env, **(env or {})},
            timeout=60,
            check=False,
        )

    return run
