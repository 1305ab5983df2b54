"""What carrying out one job did to the host: a verdict, a reason and every command run.

Executors and snapshot providers return a `WorkResult`; `vulfix.agent.work` turns it into the
wire's `JobReport`. The reason is one line a person reads in the console, so a failed command
is summed up by its name, its exit code and the last line it printed (where tools such as
apt-get, dnf and systemctl put the error); the full output goes to the report's tail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vulfix.agent.commands import NOT_FOUND_EXIT_CODE, CommandResult
from vulfix.agent_protocol import Outcome

MAX_QUOTED_LINE = 300


@dataclass(frozen=True, slots=True)
class WorkResult:
    outcome: Outcome
    reason: str
    commands: tuple[CommandResult, ...] = ()
    # The command whose failure decided the outcome, if one did.
    failed_command: CommandResult | None = None
    # What the snapshot provider calls the snapshot it made (snapshot jobs only).
    provider_ref: str = ""

    @property
    def exit_code(self) -> int | None:
        """The failing command's exit code, else the last command's, else None."""
        if self.failed_command is not None:
            return self.failed_command.exit_code
        return self.commands[-1].exit_code if self.commands else None


def succeeded(reason: str, commands: Iterable[CommandResult], provider_ref: str = "") -> WorkResult:
    return WorkResult("success", reason, tuple(commands), provider_ref=provider_ref)


def failed(reason: str, commands: Iterable[CommandResult] = ()) -> WorkResult:
    return WorkResult("failure", reason, tuple(commands))


def unsupported(reason: str) -> WorkResult:
    return WorkResult("unsupported", reason)


def command_failed(failure: CommandResult, commands: Iterable[CommandResult]) -> WorkResult:
    """A failure decided by `failure`, one of `commands`, described from its own output."""
    return WorkResult("failure", describe_failure(failure), tuple(commands), failure)


def describe_failure(result: CommandResult) -> str:
    label = command_label(result.argv)
    if result.timed_out:
        return f"{label} did not finish within {result.duration:.0f} s and was killed"
    said = last_line(result.output)
    if result.exit_code == NOT_FOUND_EXIT_CODE:
        return f"{label} could not be run (exit {NOT_FOUND_EXIT_CODE}): {said or 'not found'}"
    return f"{label} exited with {result.exit_code}" + (f": {said}" if said else "")


def command_label(argv: tuple[str, ...]) -> str:
    """The program, and its subcommand when it has one: `apt-get install`, `lvcreate`."""
    if not argv:
        return "(no command)"
    if len(argv) > 1 and not argv[1].startswith("-"):
        return f"{argv[0]} {argv[1]}"
    return argv[0]


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:MAX_QUOTED_LINE] if lines else ""
