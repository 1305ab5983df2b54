"""FixMethod 1: disabling a service, run against the fake systemctl."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.fake_host import FakeHost
from vulfix.agent.commands import CommandRunner
from vulfix.agent.executors.services import disable_service

DISABLE = ["systemctl", "disable", "--now", "telnet.socket"]
IS_ENABLED = ["systemctl", "is-enabled", "telnet.socket"]
IS_ACTIVE = ["systemctl", "is-active", "telnet.socket"]


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


async def test_the_service_is_disabled_stopped_and_checked(host: FakeHost) -> None:
    host.service("telnet.socket")

    result = await disable_service(host.runner(), "telnet.socket", dry_run=False)

    assert result.outcome == "success", result.reason
    assert result.reason == "telnet.socket is disabled and inactive"
    assert host.invocations() == [DISABLE, IS_ENABLED, IS_ACTIVE]
    assert host.current()["services"]["telnet.socket"]["enabled"] == "disabled"
    assert result.exit_code == 3  # is-active's answer for "inactive"


async def test_a_masked_service_counts_as_off(host: FakeHost) -> None:
    host.service("rpcbind", enabled="masked", active="inactive")

    result = await disable_service(host.runner(), "rpcbind", dry_run=False)

    assert result.outcome == "success"
    assert result.reason == "rpcbind is masked and inactive"


async def test_a_service_that_comes_back_is_a_failure(host: FakeHost) -> None:
    host.service("telnet.socket", restarts=True)

    result = await disable_service(host.runner(), "telnet.socket", dry_run=False)

    assert result.outcome == "failure"
    assert result.reason == (
        "telnet.socket is not off after disabling it: systemctl is-active says active"
    )


async def test_a_static_unit_cannot_be_kept_off_by_disabling_it(host: FakeHost) -> None:
    host.service("rpcbind", enabled="static")

    result = await disable_service(host.runner(), "rpcbind", dry_run=False)

    assert result.outcome == "failure"
    assert result.reason == (
        "rpcbind is not off after disabling it: it is static, started by other units, "
        "so disabling cannot keep it off (mask it, or disable what starts it)"
    )


async def test_a_unit_that_does_not_exist_is_a_failure(host: FakeHost) -> None:
    result = await disable_service(host.runner(), "vsftpd", dry_run=False)

    assert result.outcome == "failure"
    assert result.reason == (
        "systemctl disable exited with 1: "
        "Failed to disable unit: Unit file vsftpd.service does not exist."
    )
    assert result.exit_code == 1
    assert host.invocations() == [["systemctl", "disable", "--now", "vsftpd"]]


async def test_a_failing_disable_is_reported_with_its_exit_code(host: FakeHost) -> None:
    host.service("telnet.socket")
    host.fail("systemctl", 1, "Failed to disable unit: Access denied", subcommand="disable")

    result = await disable_service(host.runner(), "telnet.socket", dry_run=False)

    assert result.reason == "systemctl disable exited with 1: Failed to disable unit: Access denied"
    assert host.invocations() == [DISABLE]


async def test_dry_run_disables_nothing(host: FakeHost) -> None:
    host.service("telnet.socket")

    result = await disable_service(host.runner(dry_run=True), "telnet.socket", dry_run=True)

    assert result.outcome == "success"
    assert result.reason == "dry run: would disable and stop telnet.socket; nothing changed"
    assert host.invocations() == []
    assert result.commands[0].transcript() == (
        "$ systemctl disable --now telnet.socket\n(dry run: not run)\n"
    )


@pytest.mark.parametrize("name", ["--now", "telnet; reboot", "../../etc/passwd", ""])
async def test_a_name_that_is_not_a_unit_is_refused(host: FakeHost, name: str) -> None:
    result = await disable_service(host.runner(), name, dry_run=False)

    assert result.outcome == "failure"
    assert host.invocations() == []


async def test_a_host_without_systemctl_is_exit_127(tmp_path: Path) -> None:
    runner = CommandRunner(env={"PATH": str(tmp_path)})

    result = await disable_service(runner, "telnet.socket", dry_run=False)

    assert result.exit_code == 127
    assert result.reason.startswith("systemctl disable could not be run (exit 127)")
