"""FixMethod 1: disable and stop the vulnerable service, then check that it stays off.

`systemctl disable --now` removes the unit's boot-time links and stops it in one step. The
check afterwards asks systemd itself: `is-enabled` must say `disabled` or `masked` (masked is
stronger: nothing can start the unit), and `is-active` must say `inactive` or `failed`.

Every other answer is a failure, on purpose. `static`, `indirect`, `generated` and `alias`
units are started by something else (a socket, a timer, a generator), so `disable` cannot
keep them off. A unit that does not exist fails too: the service may live under another
name or outside systemd, and calling that "fixed" could hide a running vulnerable daemon.
"""

from __future__ import annotations

import re

from vulfix.agent.commands import NOT_FOUND_EXIT_CODE, CommandResult, CommandRunner
from vulfix.agent.executors.work_result import (
    WorkResult,
    command_failed,
    failed,
    last_line,
    succeeded,
)

# systemd's unit name alphabet; a leading letter or digit keeps it from reading as an option.
UNIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_.@\\-]{0,254}")
STATE_WORD = re.compile(r"[a-z][a-z-]*")
OFF_AT_BOOT = frozenset({"disabled", "masked", "masked-runtime"})
NOT_RUNNING = frozenset({"inactive", "failed"})
STARTED_BY_OTHERS = frozenset({"static", "indirect", "generated", "alias"})


async def disable_service(runner: CommandRunner, service: str, *, dry_run: bool) -> WorkResult:
    if not service:
        return failed("the fix names no service to disable")
    if not UNIT_NAME.fullmatch(service):
        return failed(f"refusing to pass {service!r} to systemctl: not a unit name")
    disable = await runner.run(["systemctl", "disable", "--now", service])
    commands = [disable]
    if not disable.succeeded:
        return command_failed(disable, commands)
    if dry_run:
        return succeeded(f"dry run: would disable and stop {service}; nothing changed", commands)

    is_enabled = await runner.run(["systemctl", "is-enabled", service], changes_host=False)
    is_active = await runner.run(["systemctl", "is-active", service], changes_host=False)
    commands += [is_enabled, is_active]
    for query in (is_enabled, is_active):
        if query.timed_out or query.exit_code == NOT_FOUND_EXIT_CODE:
            return command_failed(query, commands)
    enabled, active = _state(is_enabled), _state(is_active)
    problems = []
    if enabled in STARTED_BY_OTHERS:
        problems.append(
            f"it is {enabled}, started by other units, so disabling cannot keep it off "
            f"(mask it, or disable what starts it)"
        )
    elif enabled not in OFF_AT_BOOT:
        problems.append(f"systemctl is-enabled says {enabled}")
    if active not in NOT_RUNNING:
        problems.append(f"systemctl is-active says {active}")
    if problems:
        return failed(f"{service} is not off after disabling it: {'; '.join(problems)}", commands)
    return succeeded(f"{service} is {enabled} and {active}", commands)


def _state(query: CommandResult) -> str:
    """The one-word state systemctl prints; its stderr (merged in) is prose, not a state."""
    for line in query.output.splitlines():
        if STATE_WORD.fullmatch(line.strip()):
            return line.strip()
    return repr(last_line(query.output)) if query.output.strip() else "nothing"
