"""FixMethod 0 with a KB: install a Windows update from `<kb_directory>\\<KbNumber>.msu`.

The agent downloads nothing: an operator (or their software distribution) puts the `.msu`
installers in `kb_directory`. Prerequisites (`pre_kb_list`) are installed first, in order,
then the KB itself, each with `wusa.exe ... /quiet /norestart`; a reboot is never forced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vulfix.agent.commands import CommandResult, CommandRunner
from vulfix.agent.executors.work_result import (
    WorkResult,
    command_failed,
    failed,
    succeeded,
    unsupported,
)
from vulfix.agent_protocol import FixWork

# Checked before the number becomes part of a path: `KB5005565`, nothing else.
KB_NUMBER = re.compile(r"KB[0-9]{1,10}")
INSTALLED = 0
REBOOT_REQUIRED = 3010  # ERROR_SUCCESS_REBOOT_REQUIRED
ALREADY_INSTALLED = 2359302  # 0x00240006, WU_S_ALREADY_INSTALLED
FIXED_EXITS = frozenset({INSTALLED, REBOOT_REQUIRED, ALREADY_INSTALLED})
# wusa prints nothing in /quiet mode: its exit code is all there is to explain a failure.
# Keyed by the unsigned 32-bit value, as Windows reports HRESULTs either way round.
WUSA_FAILURES = {
    2: "the .msu installer is not in kb_directory",
    0x80070002: "the .msu installer is not in kb_directory",
    1618: "another installation is already in progress",
    0x80240017: "the update does not apply to this computer",
    0x8024001E: "the update was cancelled (service or system shutting down)",
}


def is_windows(os_family: str) -> bool:
    return os_family.lower().startswith("windows")


def kb_number(work: FixWork) -> str:
    """`KbNumber` as given (`kb5005565` is accepted as `KB5005565`), else `KB<KbId>`."""
    given = work.kb_number.strip().upper()
    return given or (f"KB{work.kb_id}" if work.kb_id else "")


def installer_argv(kb_directory: str, kb: str) -> list[str]:
    """wusa's command line for `kb`; ValueError unless `kb` is `KB` and digits."""
    if not KB_NUMBER.fullmatch(kb):
        raise ValueError(f"{kb!r} is not a KB number such as KB5005565")
    folder = kb_directory.rstrip("\\/")
    return ["wusa.exe", f"{folder}\\{kb}.msu", "/quiet", "/norestart"]


async def install_kb(
    runner: CommandRunner, work: FixWork, *, kb_directory: str, os_family: str, dry_run: bool
) -> WorkResult:
    kb = kb_number(work)
    if not is_windows(os_family):
        return unsupported(f"{kb or 'the KB'} is a Windows update and this host runs {os_family}")
    updates = [item.strip().upper() for item in work.pre_kb_list if item.strip()] + [kb]
    try:
        argvs = [installer_argv(kb_directory, update) for update in updates]
    except ValueError as exc:
        return failed(f"refusing to install: {exc}")
    results: list[CommandResult] = []
    for argv in argvs:
        results.append(await runner.run(argv))
        if not _installed(results[-1]):
            break
    return judge_installs(updates, results, dry_run=dry_run)


def _installed(result: CommandResult) -> bool:
    return not result.timed_out and result.exit_code in FIXED_EXITS


def judge_installs(
    updates: Sequence[str], results: Sequence[CommandResult], *, dry_run: bool
) -> WorkResult:
    """The verdict on wusa's runs for `updates` (prerequisites first, the KB last), which
    stopped at the first failure."""
    for update, result in zip(updates, results, strict=False):
        if _installed(result):
            continue
        meaning = WUSA_FAILURES.get(result.exit_code & 0xFFFFFFFF)
        if meaning is None or result.timed_out:
            return command_failed(result, results)
        reason = f"{update}: wusa.exe exited with {result.exit_code}: {meaning}"
        return WorkResult("failure", reason, tuple(results), result)
    kb = updates[-1]
    if dry_run:
        return succeeded(f"dry run: would install {', '.join(updates)}; nothing changed", results)
    if results[-1].exit_code == ALREADY_INSTALLED:
        return succeeded(f"{kb} was already installed", results)
    if any(result.exit_code == REBOOT_REQUIRED for result in results):
        return succeeded(f"{kb} installed; a reboot is pending to complete it", results)
    return succeeded(f"{kb} installed", results)
