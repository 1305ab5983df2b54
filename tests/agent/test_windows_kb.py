"""KB patches: wusa's command line, its exit codes, and hosts that are not Windows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.fake_host import FakeHost
from vulfix.agent.commands import CommandResult
from vulfix.agent.executors.windows_kb import (
    ALREADY_INSTALLED,
    REBOOT_REQUIRED,
    install_kb,
    installer_argv,
    judge_installs,
    kb_number,
)
from vulfix.agent_protocol import FixWork

KB_DIRECTORY = "C:\\vulfix\\kb"


def kb_work(
    kb_number: str = "KB5005565", kb_id: int = 5005565, pre: list[str] | None = None
) -> FixWork:
    return FixWork(
        vul_id=1,
        vul_name="Windows Print Spooler RCE",
        fix_method=0,
        packages=[],
        service="",
        kb_id=kb_id,
        kb_number=kb_number,
        kb_name="2021-09 Cumulative Update",
        pre_kb_list=pre or [],
    )


def wusa_ran(kb: str, exit_code: int) -> CommandResult:
    argv = tuple(installer_argv(KB_DIRECTORY, kb))
    return CommandResult(argv, exit_code, "", False, 12.0)


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def test_the_installer_command_line() -> None:
    assert installer_argv(KB_DIRECTORY, "KB5005565") == [
        "wusa.exe",
        "C:\\vulfix\\kb\\KB5005565.msu",
        "/quiet",
        "/norestart",
    ]
    assert installer_argv("D:\\patches\\", "KB1")[1] == "D:\\patches\\KB1.msu"


@pytest.mark.parametrize("kb", ["KB5005565 /uninstall", "..\\..\\evil", "KB", "5005565", ""])
def test_anything_but_a_kb_number_is_refused_before_it_reaches_a_path(kb: str) -> None:
    with pytest.raises(ValueError, match="is not a KB number"):
        installer_argv(KB_DIRECTORY, kb)


def test_the_kb_number_comes_from_kb_number_else_kb_id() -> None:
    assert kb_number(kb_work("kb5005565")) == "KB5005565"
    assert kb_number(kb_work("", kb_id=4012212)) == "KB4012212"
    assert kb_number(kb_work("", kb_id=0)) == ""


async def test_a_host_that_is_not_windows_runs_nothing(host: FakeHost) -> None:
    result = await install_kb(
        host.runner(), kb_work(), kb_directory=KB_DIRECTORY, os_family="ubuntu", dry_run=False
    )

    assert result.outcome == "unsupported"
    assert result.reason == "KB5005565 is a Windows update and this host runs ubuntu"
    assert host.invocations() == []


async def test_prerequisites_install_first_then_the_kb(host: FakeHost) -> None:
    work = kb_work(pre=["kb4565554"])

    result = await install_kb(
        host.runner(), work, kb_directory=KB_DIRECTORY, os_family="windows", dry_run=False
    )

    assert result.outcome == "success"
    assert result.reason == "KB5005565 installed"
    assert host.invocations() == [
        installer_argv(KB_DIRECTORY, "KB4565554"),
        installer_argv(KB_DIRECTORY, "KB5005565"),
    ]


async def test_a_failed_prerequisite_stops_before_the_kb(host: FakeHost) -> None:
    host.wusa_exit("KB4565554", 2)

    result = await install_kb(
        host.runner(),
        kb_work(pre=["KB4565554"]),
        kb_directory=KB_DIRECTORY,
        os_family="windows",
        dry_run=False,
    )

    assert result.outcome == "failure"
    assert result.reason == (
        "KB4565554: wusa.exe exited with 2: the .msu installer is not in kb_directory"
    )
    assert result.exit_code == 2
    assert len(host.invocations()) == 1


async def test_an_invalid_prerequisite_runs_nothing(host: FakeHost) -> None:
    result = await install_kb(
        host.runner(),
        kb_work(pre=["KB1 & calc"]),
        kb_directory=KB_DIRECTORY,
        os_family="windows",
        dry_run=False,
    )

    assert result.outcome == "failure"
    assert result.reason.startswith("refusing to install: 'KB1 & CALC' is not a KB number")
    assert host.invocations() == []


async def test_dry_run_installs_nothing(host: FakeHost) -> None:
    result = await install_kb(
        host.runner(dry_run=True),
        kb_work(),
        kb_directory=KB_DIRECTORY,
        os_family="windows",
        dry_run=True,
    )

    assert result.outcome == "success"
    assert result.reason == "dry run: would install KB5005565; nothing changed"
    assert host.invocations() == []


# Exit codes above 255 cannot come from a process here, so these are judged from results.


def test_3010_is_fixed_with_a_reboot_pending() -> None:
    result = judge_installs(["KB5005565"], [wusa_ran("KB5005565", REBOOT_REQUIRED)], dry_run=False)

    assert result.outcome == "success"
    assert result.reason == "KB5005565 installed; a reboot is pending to complete it"
    assert result.exit_code == 3010


def test_already_installed_is_fixed() -> None:
    result = judge_installs(
        ["KB5005565"], [wusa_ran("KB5005565", ALREADY_INSTALLED)], dry_run=False
    )

    assert result.outcome == "success"
    assert result.reason == "KB5005565 was already installed"


def test_a_prerequisite_needing_a_reboot_still_lets_the_kb_count() -> None:
    results = [wusa_ran("KB4565554", REBOOT_REQUIRED), wusa_ran("KB5005565", 0)]

    result = judge_installs(["KB4565554", "KB5005565"], results, dry_run=False)

    assert result.reason == "KB5005565 installed; a reboot is pending to complete it"


@pytest.mark.parametrize(
    ("exit_code", "reason"),
    [
        (1603, "wusa.exe C:\\vulfix\\kb\\KB5005565.msu exited with 1603"),
        (1618, "KB5005565: wusa.exe exited with 1618: another installation is already in progress"),
        (
            -2145124329,
            "KB5005565: wusa.exe exited with -2145124329: "
            "the update does not apply to this computer",
        ),
        (
            0x80240017,
            "KB5005565: wusa.exe exited with 2149842967: "
            "the update does not apply to this computer",
        ),
    ],
)
def test_other_exit_codes_are_failures(exit_code: int, reason: str) -> None:
    result = judge_installs(["KB5005565"], [wusa_ran("KB5005565", exit_code)], dry_run=False)

    assert result.outcome == "failure"
    assert result.reason == reason
    assert result.exit_code == exit_code
