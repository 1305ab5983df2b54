"""Package upgrades through each package manager, run against the fake programs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.agent.fake_host import FakeHost
from vulfix.agent.commands import CommandRunner
from vulfix.agent.executors.package_managers import (
    Apk,
    Apt,
    Dnf,
    PackageManager,
    Yum,
    Zypper,
    build_package_manager,
    detect_package_manager,
)
from vulfix.agent.executors.package_upgrade import upgrade_packages
from vulfix.agent_protocol import Package

APT_INSTALL = [
    "apt-get", "install", "--only-upgrade", "-y",
    "-o", "DPkg::Lock::Timeout=300",
    "-o", "Dpkg::Options::=--force-confdef",
    "-o", "Dpkg::Options::=--force-confold",
]  # fmt: skip
DPKG_QUERY = ["dpkg-query", "-W", r"--showformat=${Status}\t${Version}\n"]
RPM_QUERY = ["rpm", "-q", "--qf", r"%{EPOCH}:%{VERSION}-%{RELEASE}\n"]
APK_QUERY = ["apk", "list", "--installed"]


@dataclass(frozen=True)
class Case:
    """One package manager, with versions in its own scheme and its exact commands."""

    build: Callable[[CommandRunner], PackageManager]
    old: str
    new: str
    newer: str
    query: list[str]
    upgrade: list[list[str]]  # the commands before the package names, last one gets them
    failing_program: str
    failing_subcommand: str
    failure_exit: int
    failure_line: str


CASES = {
    "apt": Case(
        Apt, "1.1.1f-1ubuntu2.16", "1.1.1f-1ubuntu2.17", "1.1.1f-1ubuntu2.18", DPKG_QUERY,
        [["apt-get", "update"], APT_INSTALL], "apt-get", "install", 100,
        "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2117 (apt)",
    ),
    "dnf": Case(
        Dnf, "1:1.1.1k-7.el8_6", "1:1.1.1k-9.el8_7", "1:1.1.1k-12.el8_9", RPM_QUERY,
        [["dnf", "upgrade", "-y"]], "dnf", "upgrade", 1,
        "Error: Failed to download metadata for repo 'appstream': Cannot download repomd.xml",
    ),
    "yum": Case(
        Yum, "1.0.2k-25.el7_9", "1.0.2k-26.el7_9", "1.0.2k-27.el7_9", RPM_QUERY,
        [["yum", "update", "-y"]], "yum", "update", 1,
        "Error: Transaction test error: file /usr/lib64/libssl.so.10 conflicts",
    ),
    "zypper": Case(
        Zypper, "1.1.1l-150400.7.28.1", "1.1.1l-150400.7.60.2", "1.1.1l-150400.7.70.1",
        RPM_QUERY, [["zypper", "--non-interactive", "update"]], "zypper", "update", 8,
        "Problem occurred during or after installation or removal of packages",
    ),
    "apk": Case(
        Apk, "3.1.4-r1", "3.1.4-r5", "3.1.4-r6", APK_QUERY,
        [["apk", "update"], ["apk", "upgrade"]], "apk", "upgrade", 1,
        "ERROR: openssl-3.1.4-r5: BAD signature",
    ),
}  # fmt: skip


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def expected_upgrade(case: Case, *names: str) -> list[list[str]]:
    return [*case.upgrade[:-1], [*case.upgrade[-1], *names]]


async def test_only_the_vulnerable_package_is_upgraded_then_verified(
    case: Case, host: FakeHost
) -> None:
    host.package("openssl", case.old, available=case.new)
    host.package("curl", case.new, available=case.newer)
    manager = case.build(host.runner())
    packages = [Package(name="openssl", fixed_version=case.new)]
    packages.append(Package(name="curl", fixed_version=case.old))

    result = await upgrade_packages(manager, packages, dry_run=False)

    assert result.outcome == "success", result.reason
    assert result.reason == f"upgraded openssl {case.old} -> {case.new}"
    assert host.installed("openssl") == [case.new]
    assert host.installed("curl") == [case.new]  # already fixed: left alone
    assert host.invocations() == [
        [*case.query, "openssl"],
        [*case.query, "curl"],
        *expected_upgrade(case, "openssl"),
        [*case.query, "openssl"],
    ]
    assert result.exit_code == 0


async def test_an_upgrade_that_stops_short_is_still_vulnerable(case: Case, host: FakeHost) -> None:
    host.package("openssl", case.old, available=case.new)
    manager = case.build(host.runner())

    result = await upgrade_packages(
        manager, [Package(name="openssl", fixed_version=case.newer)], dry_run=False
    )

    assert result.outcome == "failure"
    assert result.reason == f"still vulnerable: openssl is {case.new}, fixed in {case.newer}"
    assert host.invocations()[-1] == [*case.query, "openssl"]


async def test_a_failed_upgrade_reports_its_exit_code_and_last_line(
    case: Case, host: FakeHost
) -> None:
    host.package("openssl", case.old, available=case.new)
    host.fail(
        case.failing_program,
        case.failure_exit,
        f"some progress\n{case.failure_line}",
        subcommand=case.failing_subcommand,
    )
    manager = case.build(host.runner())

    result = await upgrade_packages(
        manager, [Package(name="openssl", fixed_version=case.new)], dry_run=False
    )

    assert result.outcome == "failure"
    label = f"{case.failing_program} {case.failing_subcommand}"
    if case.failing_program == "zypper":
        label = "zypper"  # its first argument is an option
    assert result.reason == f"{label} exited with {case.failure_exit}: {case.failure_line}"
    assert result.exit_code == case.failure_exit
    assert host.installed("openssl") == [case.old]
    assert host.invocations()[-1] == expected_upgrade(case, "openssl")[-1]  # no verification


async def test_a_package_that_is_not_installed_fails_before_anything_changes(
    case: Case, host: FakeHost
) -> None:
    host.package("openssl", available=case.new)
    manager = case.build(host.runner())

    result = await upgrade_packages(
        manager, [Package(name="openssl", fixed_version=case.new)], dry_run=False
    )

    assert result.outcome == "failure"
    assert result.reason == "openssl is not installed, so it cannot be upgraded"
    assert host.invocations() == [[*case.query, "openssl"]]


async def test_dry_run_queries_but_upgrades_nothing(case: Case, host: FakeHost) -> None:
    host.package("openssl", case.old, available=case.new)
    manager = case.build(host.runner(dry_run=True))

    result = await upgrade_packages(
        manager, [Package(name="openssl", fixed_version=case.new)], dry_run=True
    )

    assert result.outcome == "success"
    assert result.reason == "dry run: would upgrade openssl; nothing changed"
    assert host.invocations() == [[*case.query, "openssl"]]
    assert host.installed("openssl") == [case.old]
    assert [command.argv for command in result.commands[1:]] == [
        tuple(argv) for argv in expected_upgrade(case, "openssl")
    ]


async def test_a_package_already_fixed_runs_no_upgrade(host: FakeHost) -> None:
    host.package("bash", "5.1-6ubuntu1.1", available="5.1-6ubuntu1.2")

    result = await upgrade_packages(
        Apt(host.runner()), [Package(name="bash", fixed_version="5.1-6ubuntu1")], dry_run=False
    )

    assert result.outcome == "success"
    assert result.reason == "already fixed: bash 5.1-6ubuntu1.1"
    assert host.invocations() == [[*DPKG_QUERY, "bash"]]


async def test_a_package_removed_with_its_configuration_kept_is_not_installed(
    host: FakeHost,
) -> None:
    host.package("openssl", "1.1.1f-1ubuntu2.16", available="1.1.1f-1ubuntu2.17")
    host.package_status("openssl", "deinstall ok config-files")

    result = await upgrade_packages(
        Apt(host.runner()),
        [Package(name="openssl", fixed_version="1.1.1f-1ubuntu2.17")],
        dry_run=False,
    )

    assert result.reason == "openssl is not installed, so it cannot be upgraded"


async def test_a_failed_list_refresh_does_not_stop_the_upgrade(host: FakeHost) -> None:
    host.package("openssl", "1.1.1f-1ubuntu2.16", available="1.1.1f-1ubuntu2.17")
    host.fail("apt-get", 100, "E: Failed to fetch http://ppa.example.org", subcommand="update")

    result = await upgrade_packages(
        Apt(host.runner()),
        [Package(name="openssl", fixed_version="1.1.1f-1ubuntu2.17")],
        dry_run=False,
    )

    assert result.outcome == "success"
    assert result.commands[1].exit_code == 100


async def test_yum_that_finds_nothing_exits_0_and_the_check_catches_it(host: FakeHost) -> None:
    host.package("openssl", "1.0.2k-25.el7_9")

    result = await upgrade_packages(
        Yum(host.runner()),
        [Package(name="openssl", fixed_version="1.0.2k-26.el7_9")],
        dry_run=False,
    )

    assert result.reason == (
        "still vulnerable: openssl is 1.0.2k-25.el7_9, fixed in 1.0.2k-26.el7_9"
    )
    assert result.exit_code == 0


async def test_zypper_informational_exits_leave_the_verdict_to_the_check(host: FakeHost) -> None:
    host.package("openssl", "1.1.1l-150400.7.28.1", available="1.1.1l-150400.7.60.2")
    host.fail("zypper", 102, "A reboot is needed", subcommand="update")

    result = await upgrade_packages(
        Zypper(host.runner()),
        [Package(name="openssl", fixed_version="1.1.1l-150400.7.60.2")],
        dry_run=False,
    )

    # The fake exits before upgrading: the version check, not the exit code, fails it.
    assert result.reason.startswith("still vulnerable: openssl is 1.1.1l-150400.7.28.1")


async def test_rpm_epochs_are_read_and_an_advisory_without_one_still_counts(
    host: FakeHost,
) -> None:
    host.package("openssl", "1:1.1.1k-7.el8_6", available="1:1.1.1k-7.el8_6")
    host.package("bash", "4.4.20-4.el8_6")

    result = await upgrade_packages(
        Dnf(host.runner()),
        [
            Package(name="bash", fixed_version="4.4.20-4.el8_6"),
            Package(name="openssl", fixed_version="1.1.1k-9.el8_7"),
        ],
        dry_run=False,
    )

    assert result.reason == "still vulnerable: openssl is 1:1.1.1k-7.el8_6, fixed in 1.1.1k-9.el8_7"


async def test_the_newest_of_several_installed_versions_counts(host: FakeHost) -> None:
    host.package("kernel", "5.14.0-70.13.1.el9_0", "5.14.0-162.6.1.el9_1")

    result = await upgrade_packages(
        Dnf(host.runner()),
        [Package(name="kernel", fixed_version="5.14.0-162.6.1.el9_1")],
        dry_run=False,
    )

    assert result.reason == "already fixed: kernel 5.14.0-162.6.1.el9_1"


async def test_without_a_fixed_version_the_newest_build_is_installed(host: FakeHost) -> None:
    host.package("musl", "1.2.4-r1", available="1.2.4-r2")

    result = await upgrade_packages(
        Apk(host.runner()), [Package(name="musl", fixed_version="")], dry_run=False
    )

    assert result.outcome == "success"
    assert result.reason == "upgraded musl 1.2.4-r1 -> 1.2.4-r2 (no fixed version to check against)"


@pytest.mark.parametrize("name", ["-oAPT::Get::AllowUnauthenticated=1", "openssl=1.0", "lib*", ""])
async def test_a_name_that_is_not_a_package_is_refused(host: FakeHost, name: str) -> None:
    result = await upgrade_packages(
        Apt(host.runner()), [Package(name=name, fixed_version="1")], dry_run=False
    )

    assert result.outcome == "failure"
    assert result.reason == f"refusing to pass {name!r} to apt: not a package name"
    assert host.invocations() == []


async def test_a_missing_query_program_is_exit_127(tmp_path: Path) -> None:
    runner = CommandRunner(env={"PATH": str(tmp_path)})

    result = await upgrade_packages(
        Apt(runner), [Package(name="openssl", fixed_version="1")], dry_run=False
    )

    assert result.exit_code == 127
    assert result.reason.startswith("dpkg-query could not be run (exit 127): dpkg-query")


async def test_an_upgrade_that_hangs_is_killed(host: FakeHost) -> None:
    host.package("openssl", "1.1.1f-1ubuntu2.16", available="1.1.1f-1ubuntu2.17")
    host.hang("apt-get", 30, subcommand="install")

    result = await upgrade_packages(
        Apt(host.runner(timeout=1.0)),
        [Package(name="openssl", fixed_version="1.1.1f-1ubuntu2.17")],
        dry_run=False,
    )

    assert re.fullmatch(
        r"apt-get install did not finish within \d+ s and was killed", result.reason
    )
    assert result.exit_code == 124


@pytest.mark.parametrize(
    ("families", "dnf_on_path", "expected"),
    [
        (["ubuntu"], False, "apt"),
        (["uos"], False, "apt"),
        (["rocky"], True, "dnf"),
        (["centos"], False, "yum"),
        (["tencentos"], True, "dnf"),
        (["linuxmint", "linuxmint", "ubuntu", "debian"], False, "apt"),
        (["myos", "myos", "rhel", "fedora"], True, "dnf"),
        (["opensuse-leap", "opensuse-leap", "suse", "opensuse"], False, "zypper"),
        (["sles"], False, "zypper"),
        (["alpine"], False, "apk"),
        (["windows"], False, None),
        (["gentoo", "gentoo"], False, None),
    ],
)
def test_detection_follows_the_os_family_then_id_like(
    families: list[str], dnf_on_path: bool, expected: str | None
) -> None:
    assert detect_package_manager(families, dnf_on_path) == expected


def test_dnf_is_chosen_only_when_it_is_on_the_path(tmp_path: Path) -> None:
    with_dnf = FakeHost(tmp_path).runner()
    without_dnf = CommandRunner(env={"PATH": str(tmp_path)})

    chosen = build_package_manager("auto", with_dnf, families=["rhel"])
    fallback = build_package_manager("auto", without_dnf, families=["rhel"])
    configured = build_package_manager("zypper", with_dnf, families=["ubuntu"])

    assert chosen is not None and chosen.name == "dnf"
    assert fallback is not None and fallback.name == "yum"
    assert configured is not None and configured.name == "zypper"
    assert build_package_manager("auto", with_dnf, families=["windows"]) is None
