"""One way to run a program on the host: an argument list, a timeout, and a tail of output.

Every executor and snapshot provider runs through `CommandRunner`, so that all of them share
the same guarantees: no shell (arguments go to `execve` as a list, so an untrusted package or
service name can never become a second command), a hard timeout that kills the whole process
group, the exit code, and the last `tail_bytes` of interleaved stdout and stderr for the
server's host log. In dry-run mode the command is logged and reported as a success, unrun.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vulfix.agent_protocol import MAX_OUTPUT_TAIL

log = logging.getLogger("vulfix.agent.commands")

TIMED_OUT_EXIT_CODE = 124  # what coreutils' timeout(1) returns
NOT_FOUND_EXIT_CODE = 127  # what a shell returns for a missing program


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    output: str
    timed_out: bool
    duration: float

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def transcript(self) -> str:
        """The command line and its output, as the host log shows it."""
        line = "$ " + " ".join(self.argv)
        return f"{line}\n{self.output}" if self.output else line + "\n"


class CommandRunner:
    def __init__(
        self,
        *,
        dry_run: bool = False,
        timeout: float = 1800.0,
        tail_bytes: int = MAX_OUTPUT_TAIL,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.dry_run = dry_run
        self.timeout = timeout
        self._tail_bytes = tail_bytes
        # Package managers must not stop to ask; locale fixed so that output parses the same.
        base = dict(os.environ if env is None else env)
        base.update({"LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})
        self._env = base

    def which(self, program: str) -> str | None:
        """Where `program` is on the PATH that commands run with; None if it is not there."""
        return shutil.which(program, path=self._env.get("PATH", os.defpath))

    async def run(
        self,
        argv: Sequence[str],
        *,
        # Not asyncio.timeout: on expiry the whole process group must be killed, not abandoned.
        timeout: float | None = None,  # noqa: ASYNC109
        env: Mapping[str, str] | None = None,
        changes_host: bool = True,
    ) -> CommandResult:
        """Run `argv`; `changes_host=False` marks a read-only query, run even in dry-run mode."""
        args = tuple(argv)
        if self.dry_run and changes_host:
            log.info("dry run: would run %s", args)
            return CommandResult(args, 0, "(dry run: not run)\n", False, 0.0)
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        merged = {**self._env, **env} if env else self._env
        try:
            process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=merged,
                start_new_session=True,
            )
        except OSError as exc:
            return CommandResult(
                args, NOT_FOUND_EXIT_CODE, f"{args[0]}: {exc.strerror}\n", False, 0.0
            )
        tail = bytearray()
        timed_out = False

        async def collect() -> None:
            assert process.stdout is not None
            while chunk := await process.stdout.read(65536):
                tail.extend(chunk)
                del tail[: max(0, len(tail) - self._tail_bytes)]

        try:
            await asyncio.wait_for(collect(), limit)
            await asyncio.wait_for(process.wait(), max(0.1, limit - (time.monotonic() - started)))
        except TimeoutError:
            timed_out = True
            _kill(process)
            await process.wait()
        output = tail.decode("utf-8", errors="replace")
        if timed_out:
            output += f"\n(killed after {limit:g} s)\n"
        exit_code = TIMED_OUT_EXIT_CODE if timed_out else (process.returncode or 0)
        result = CommandResult(args, exit_code, output, timed_out, time.monotonic() - started)
        log.info("ran %s: exit %d in %.1f s", args, exit_code, result.duration)
        return result


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kills the command and everything it started (its own session on POSIX); Windows has no
    process groups to signal, so there only the command itself is killed."""
    with contextlib.suppress(ProcessLookupError):
        if sys.platform == "win32":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)
