"""`vulfix demo` as a newcomer runs it: it serves, and the lines it prints work when pasted."""

from __future__ import annotations

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


def test_demo_serves_and_its_printed_tccli_line_works(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    demo = subprocess.Popen(
        [str(BIN / "vulfix"), "demo", "--port", str(port), "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []
        assert demo.stdout is not None
        while not any("Press Ctrl-C" in line for line in lines):
            line = demo.stdout.readline()
            assert line, "demo exited before printing its instructions"
            lines.append(line)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        text = "".join(lines)
        assert (tmp_path / "state" / "vulfix.db").exists()
        assert oct((tmp_path / "state" / "demo-key.json").stat().st_mode & 0o777) == "0o600"
        tccli_line = re.search(r"^  (tccli cwp .*?)$", text.replace("\\\n    ", ""), re.MULTILINE)
        assert tccli_line, text
        command = shlex.split(tccli_line.group(1))
        command[0] = str(BIN / "tccli")
        pasted = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        # No task exists yet, so the API answers a clean, documented error (not a transport one).
        assert pasted.returncode == 255
        assert "code:InvalidParameterValue" in pasted.stderr and "requestId:" in pasted.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=20) in (0, -signal.SIGINT, 130)
