"""CommandRunner's guarantees, on real processes."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from tests.agent.fake_host import FAKEBIN, FakeHost
from vulfix.agent.commands import NOT_FOUND_EXIT_CODE, TIMED_OUT_EXIT_CODE, CommandRunner

# Starts a grandchild that outlives its parent unless the whole process group is killed.
SPAWNS_A_SLEEPER = """
import subprocess, sys, time
sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(sys.argv[1], "w").write(str(sleeper.pid))
print("started", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleeper.pid"
    runner = CommandRunner(timeout=30.0)
    started = time.monotonic()

    result = await runner.run([sys.executable, "-c", SPAWNS_A_SLEEPER, str(pid_file)], timeout=1.0)

    assert time.monotonic() - started < 10
    assert result.timed_out
    assert result.exit_code == TIMED_OUT_EXIT_CODE
    assert not result.succeeded
    assert result.output.startswith("started\n")
    assert "(killed after 1 s)" in result.output
    sleeper = int(pid_file.read_text())
    for _ in range(50):
        if not alive(sleeper):
            break
        await asyncio.sleep(0.1)
    assert not alive(sleeper)


async def test_output_keeps_only_its_tail() -> None:
    runner = CommandRunner(tail_bytes=1000)
    script = "import sys; sys.stdout.write('x' * 200_000 + '\\nTHE END\\n')"

    result = await runner.run([sys.executable, "-c", script])

    assert result.succeeded
    assert len(result.output) == 1000
    assert result.output.endswith("x\nTHE END\n")


async def test_stderr_is_interleaved_into_the_output() -> None:
    script = "import sys; print('out', flush=True); print('err', file=sys.stderr); sys.exit(3)"

    result = await CommandRunner().run([sys.executable, "-c", script])

    assert result.exit_code == 3
    assert result.output == "out\nerr\n"
    assert result.transcript().startswith(f"$ {sys.executable} -c ")


async def test_a_missing_program_is_exit_127(tmp_path: Path) -> None:
    result = await CommandRunner().run([str(tmp_path / "no-such-program"), "--flag"])

    assert result.exit_code == NOT_FOUND_EXIT_CODE
    assert "No such file or directory" in result.output
    assert result.transcript() == f"$ {tmp_path}/no-such-program --flag\n{result.output}"


async def test_dry_run_runs_nothing_that_changes_the_host(tmp_path: Path) -> None:
    runner = CommandRunner(dry_run=True)
    marker = tmp_path / "changed"
    touch = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w')", str(marker)]

    skipped = await runner.run(touch)

    assert skipped.succeeded
    assert skipped.output == "(dry run: not run)\n"
    assert not marker.exists()


async def test_dry_run_still_runs_read_only_queries(tmp_path: Path) -> None:
    runner = CommandRunner(dry_run=True)
    marker = tmp_path / "queried"
    query = [sys.executable, "-c", "import sys; open(sys.argv[1], 'w')", str(marker)]

    await runner.run(query, changes_host=False)

    assert marker.exists()


async def test_commands_get_the_runners_environment(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    runner = host.runner()
    script = "import os; print(os.environ['VULFIX_FAKE_HOST'], os.environ['LC_ALL'])"

    result = await runner.run([sys.executable, "-c", script])

    assert result.output == f"{host.state_path} C\n"


def test_which_searches_the_path_commands_run_with(tmp_path: Path) -> None:
    runner = FakeHost(tmp_path).runner()

    assert runner.which("apt-get") == str(FAKEBIN / "apt-get")
    assert runner.which("definitely-not-installed") is None
