"""`vulfix demo` as a newcomer runs it: a fleet gets fixed, and the printed lines work."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.processes import free_port

BIN = Path(sys.executable).parent


def read_until(stream: object, pattern: str, lines: list[str], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        assert line, "demo exited early:\n" + "".join(lines)
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} in {timeout} s:\n" + "".join(lines))


def test_demo_fixes_a_fleet_and_its_printed_tccli_line_works(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    demo = subprocess.Popen(
        [
            str(BIN / "vulfix"),
            "demo",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path / "state"),
            "--no-tui",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        assert demo.stdout is not None
        console = read_until(demo.stdout, r"web console: (http://\S+/console)", lines, 60).group(1)
        fix_id = int(read_until(demo.stdout, r"Created fix task (\d+)", lines, 60).group(1))
        read_until(demo.stdout, r"^  tccli cwp ", lines, 10)
        tccli = (
            lines[-1].strip()
            + " "
            + read_until(demo.stdout, r"--endpoint", lines, 5).string.strip()
        )
        read_until(demo.stdout, r"fixes 100%", lines, 90)
        assert (tmp_path / "state" / "vulfix.db").exists()
        assert oct((tmp_path / "state" / "demo-key.json").stat().st_mode & 0o777) == "0o600"
        command = shlex.split(tccli.replace("\\ ", " "))
        command[0] = str(BIN / "tccli")
        pasted = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert pasted.returncode == 0, pasted.stderr
        answer = json.loads(pasted.stdout)
        assert (
            answer["FixId"] == fix_id and answer["FixProgress"] == 100 and answer["HostCnt"] == 48
        )
        assert answer["FixSuccessCnt"] > 0 and answer["FixEndTime"]
        assert "HTTP Request" not in (tmp_path / "state" / "server.log").read_text()
        sign_in_page = httpx.get(console, follow_redirects=True, timeout=10)
        assert sign_in_page.status_code == 200 and "SecretKey" in sign_in_page.text
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) in (0, -signal.SIGINT, 130)
