"""HostWork: a job in, a report out, with the real executors running the fake programs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.fake_host import FakeHost
from vulfix.agent.commands import CommandRunner
from vulfix.agent.config import AgentConfig, ConfigError, SnapshotConfig
from vulfix.agent.executors.work_result import WorkResult
from vulfix.agent.work import HostWork
from vulfix.agent_protocol import (
    MAX_OUTPUT_TAIL,
    FixWork,
    JobEnvelope,
    Package,
    SnapshotDeleteWork,
    SnapshotWork,
)

UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'
ROCKY = 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\n'


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


def config_for(host: FakeHost, os_release: str = UBUNTU, **settings: object) -> AgentConfig:
    release = host.root / "os-release"
    release.write_text(os_release, encoding="utf-8")
    return AgentConfig(server="http://vulfix.test", os_release=str(release), **settings)  # type: ignore[arg-type]


def job(work: SnapshotWork | FixWork | SnapshotDeleteWork, job_id: int = 7) -> JobEnvelope:
    return JobEnvelope(job_id=job_id, fix_id=3, lease_seconds=600.0, work=work)


def fix(
    *,
    fix_method: int = 0,
    packages: list[Package] | None = None,
    service: str = "",
    kb_number: str = "",
) -> FixWork:
    return FixWork(
        vul_id=1001,
        vul_name="OpenSSL infinite loop (CVE-2022-0778)",
        fix_method=fix_method,
        packages=packages or [],
        service=service,
        kb_id=0,
        kb_number=kb_number,
        kb_name="",
        pre_kb_list=[],
    )


OPENSSL_FIX = fix(packages=[Package(name="openssl", fixed_version="1.1.1f-1ubuntu2.17")])


async def test_a_package_fix_is_reported_with_its_transcript(host: FakeHost) -> None:
    host.package("openssl", "1.1.1f-1ubuntu2.16", available="1.1.1f-1ubuntu2.17")
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(OPENSSL_FIX))

    assert report.outcome == "success", report.reason
    assert report.reason == "upgraded openssl 1.1.1f-1ubuntu2.16 -> 1.1.1f-1ubuntu2.17"
    assert report.exit_code == 0
    assert report.output_tail.startswith("$ dpkg-query -W --showformat=")
    assert "$ apt-get update\nHit:1" in report.output_tail
    assert "\nSetting up openssl (1.1.1f-1ubuntu2.17) ...\n$ dpkg-query" in report.output_tail
    assert report.duration_seconds > 0
    assert report.provider_ref == ""


async def test_the_failing_commands_exit_code_is_reported(host: FakeHost) -> None:
    host.package("openssl", "1.1.1f-1ubuntu2.16", available="1.1.1f-1ubuntu2.17")
    host.fail(
        "apt-get", 100, "E: Could not get lock /var/lib/dpkg/lock-frontend", subcommand="install"
    )
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(OPENSSL_FIX))

    assert report.outcome == "failure"
    assert report.exit_code == 100
    assert report.reason == (
        "apt-get install exited with 100: E: Could not get lock /var/lib/dpkg/lock-frontend"
    )
    assert report.output_tail.endswith("E: Could not get lock /var/lib/dpkg/lock-frontend\n")


async def test_the_output_tail_keeps_the_end_of_a_long_transcript(host: FakeHost) -> None:
    host.package("openssl", "1.1.1f-1ubuntu2.16", available="1.1.1f-1ubuntu2.17")
    noise = "\n".join(f"Get:{n} http://archive.example.org/ubuntu focal" for n in range(3000))
    host.fail("apt-get", 100, f"{noise}\nE: Sub-process /usr/bin/dpkg returned an error code (1)")
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(OPENSSL_FIX))

    assert len(report.output_tail) == MAX_OUTPUT_TAIL
    assert report.output_tail.endswith("returned an error code (1)\n")


async def test_the_package_manager_follows_os_release(host: FakeHost) -> None:
    host.package("openssl", "1:1.1.1k-7.el8_6", available="1:1.1.1k-9.el8_7")
    work = HostWork(config_for(host, ROCKY), host.runner(), "rocky")
    rpm_fix = fix(packages=[Package(name="openssl", fixed_version="1:1.1.1k-9.el8_7")])

    report = await work.run(job(rpm_fix))

    assert report.outcome == "success", report.reason
    assert ["dnf", "upgrade", "-y", "openssl"] in host.invocations()


async def test_the_configured_package_manager_wins(host: FakeHost) -> None:
    work = HostWork(config_for(host, package_manager="apk"), host.runner(), "ubuntu")

    assert work.packages is not None and work.packages.name == "apk"


async def test_an_unknown_distribution_cannot_upgrade_packages(host: FakeHost) -> None:
    work = HostWork(config_for(host, "ID=gentoo\n"), host.runner(), "gentoo")

    report = await work.run(job(OPENSSL_FIX))

    assert report.outcome == "unsupported"
    assert "set package_manager" in report.reason
    assert host.invocations() == []


async def test_a_missing_program_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    runner = CommandRunner(env={"PATH": str(tmp_path / "empty")})
    work = HostWork(config_for(host), runner, "ubuntu")

    report = await work.run(job(OPENSSL_FIX))

    assert report.outcome == "failure"
    assert report.exit_code == 127
    assert "dpkg-query could not be run (exit 127)" in report.reason


async def test_a_service_fix_disables_the_service(host: FakeHost) -> None:
    host.service("telnet.socket")
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(fix(fix_method=1, service="telnet.socket")))

    assert report.outcome == "success"
    assert host.invocations()[0] == ["systemctl", "disable", "--now", "telnet.socket"]


async def test_a_kb_on_a_linux_host_is_unsupported(host: FakeHost) -> None:
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(fix(kb_number="KB5005565")))

    assert report.outcome == "unsupported"
    assert report.exit_code is None
    assert host.invocations() == []


async def test_a_kb_on_a_windows_host_runs_wusa(host: FakeHost) -> None:
    work = HostWork(config_for(host, kb_directory="D:\\kb"), host.runner(), "windows")

    report = await work.run(job(fix(kb_number="KB5005565")))

    assert report.outcome == "success"
    assert host.invocations() == [["wusa.exe", "D:\\kb\\KB5005565.msu", "/quiet", "/norestart"]]
    assert work.packages is None


async def test_an_unknown_fix_method_is_unsupported(host: FakeHost) -> None:
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(fix(fix_method=2)))

    assert report.outcome == "unsupported"
    assert report.reason == "FixMethod 2 is not one this agent knows"


async def test_a_fix_with_nothing_to_do_is_a_failure(host: FakeHost) -> None:
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(fix()))

    assert report.outcome == "failure"
    assert report.reason == "the fix names no package to upgrade"


LVM = SnapshotConfig(provider="lvm", volume_group="vg0", logical_volume="root")


async def test_a_snapshot_job_reports_the_providers_reference(host: FakeHost) -> None:
    host.lvm_volume("vg0/root")
    work = HostWork(config_for(host, snapshot=LVM), host.runner(), "ubuntu")
    snapshot = SnapshotWork(snapshot_name="漏洞修复_OpenSSL 漏洞 & more", save_days=7)

    report = await work.run(job(snapshot, job_id=12))

    assert work.snapshot_supported
    assert report.outcome == "success"
    assert report.provider_ref == "vulfix-12-OpenSSL-more"
    assert report.output_tail == (
        "$ lvcreate --snapshot --name vulfix-12-OpenSSL-more --size 5G vg0/root\n"
        '  Logical volume "vulfix-12-OpenSSL-more" created.\n'
    )


async def test_a_snapshot_delete_job_removes_it(host: FakeHost) -> None:
    host.lvm_volume("vg0/root")
    work = HostWork(config_for(host, snapshot=LVM), host.runner(), "ubuntu")
    created = await work.run(job(SnapshotWork(snapshot_name="x", save_days=7), job_id=12))

    deleted = await work.run(
        job(SnapshotDeleteWork(snapshot_id="snap-abc", provider_ref=created.provider_ref))
    )

    assert deleted.outcome == "success"
    assert host.invocations()[-1] == ["lvremove", "-y", "vg0/vulfix-12-x"]


async def test_a_host_without_a_provider_reports_snapshots_unsupported(host: FakeHost) -> None:
    work = HostWork(config_for(host), host.runner(), "ubuntu")

    report = await work.run(job(SnapshotWork(snapshot_name="x", save_days=7)))

    assert not work.snapshot_supported
    assert report.outcome == "unsupported"


def test_a_bad_provider_configuration_fails_at_start_up(host: FakeHost) -> None:
    config = config_for(host, snapshot=SnapshotConfig(provider="lvm"))

    with pytest.raises(ConfigError, match=r"snapshot\.volume_group"):
        HostWork(config, host.runner(), "ubuntu")


async def test_dry_run_changes_nothing_and_says_what_would_run(host: FakeHost) -> None:
    host.package("openssl", "1.1.1f-1ubuntu2.16", available="1.1.1f-1ubuntu2.17")
    host.lvm_volume("vg0/root")
    work = HostWork(config_for(host, snapshot=LVM), host.runner(dry_run=True), "ubuntu")

    snapshot = await work.run(job(SnapshotWork(snapshot_name="x", save_days=7)))
    fixed = await work.run(job(OPENSSL_FIX))

    assert (snapshot.outcome, fixed.outcome) == ("success", "success")
    assert fixed.reason == "dry run: would upgrade openssl; nothing changed"
    assert "$ apt-get install --only-upgrade -y" in fixed.output_tail
    assert fixed.output_tail.endswith("openssl\n(dry run: not run)\n")
    assert host.installed("openssl") == ["1.1.1f-1ubuntu2.16"]
    assert host.current()["lvm"]["snapshots"] == []
    assert [argv[0] for argv in host.invocations()] == ["dpkg-query"]


class ExplodingSnapshots:
    """A provider with a bug in it, standing in for any unforeseen error in an executor."""

    name = "exploding"
    supported = True

    async def create(self, name: str, save_days: int, job_id: int) -> WorkResult:
        raise RuntimeError("provider bug")

    async def delete(self, ref: str, job_id: int) -> WorkResult:
        raise RuntimeError("provider bug")


async def test_an_error_inside_the_agent_is_reported_not_raised(host: FakeHost) -> None:
    work = HostWork(config_for(host), host.runner(), "ubuntu")
    work.snapshots = ExplodingSnapshots()

    report = await work.run(job(SnapshotWork(snapshot_name="x", save_days=7)))

    assert report.outcome == "failure"
    assert report.reason == (
        "the agent failed while running this job: RuntimeError('provider bug')"
    )
