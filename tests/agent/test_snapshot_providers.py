"""Snapshot providers: names, configured commands and the lvm, btrfs and zfs presets."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.agent.fake_host import FakeHost
from vulfix.agent.config import ConfigError, SnapshotConfig
from vulfix.agent.snapshot_providers import build_snapshot_provider, host_snapshot_name

# Prints its arguments, then a reference on the last line, as a cloud CLI might.
PRINTS_A_REFERENCE = "import sys; print('snapshotting', *sys.argv[1:]); print('snap-0042')"
SILENT = "pass"


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("漏洞修复_OpenSSL 远程代码执行漏洞(CVE-2022-0778)", "vulfix-42-OpenSSL-CVE-2022-0778"),
        ("vul-fix_Log4j & friends", "vulfix-42-vul-fix-Log4j-friends"),
        ("漏洞修复", "vulfix-42"),
        ("", "vulfix-42"),
        ("../../etc", "vulfix-42-etc"),
        ("snapshot_rimage_cdata", "vulfix-42-snapshot-rimage-cdata"),
        ("a" * 100, "vulfix-42-" + "a" * 54),
    ],
)
def test_snapshot_names_are_safe_for_lvm_btrfs_and_zfs(requested: str, expected: str) -> None:
    name = host_snapshot_name(requested, 42)

    assert name == expected
    assert re.fullmatch(r"vulfix-[0-9]+(-[A-Za-z0-9.-]+)?", name)
    assert len(name) <= 64


def test_none_takes_no_snapshots(host: FakeHost) -> None:
    provider = build_snapshot_provider(SnapshotConfig(), host.runner())

    assert provider.name == "none"
    assert not provider.supported


async def test_none_answers_unsupported_if_asked_anyway(host: FakeHost) -> None:
    provider = build_snapshot_provider(SnapshotConfig(), host.runner())

    result = await provider.create("vulfix-1", 7, 1)

    assert result.outcome == "unsupported"
    assert host.invocations() == []


async def test_command_formats_each_argument_on_its_own(host: FakeHost) -> None:
    config = SnapshotConfig(
        provider="command",
        create=[
            sys.executable,
            "-c",
            PRINTS_A_REFERENCE,
            "{name}",
            "--keep={save_days}d",
            "{job_id}",
        ],
        delete=[sys.executable, "-c", SILENT, "{ref}", "{job_id}"],
    )
    provider = build_snapshot_provider(config, host.runner())

    result = await provider.create("vulfix-7-x", 30, 7)

    assert result.outcome == "success"
    assert result.provider_ref == "snap-0042"
    assert result.reason == "snapshot snap-0042 created"
    assert result.commands[0].argv[3:] == ("vulfix-7-x", "--keep=30d", "7")
    assert result.commands[0].output == "snapshotting vulfix-7-x --keep=30d 7\nsnap-0042\n"


async def test_command_that_prints_nothing_is_known_by_the_name(host: FakeHost) -> None:
    config = SnapshotConfig(provider="command", create=[sys.executable, "-c", SILENT, "{name}"])
    provider = build_snapshot_provider(config, host.runner())

    result = await provider.create("vulfix-7-x", 30, 7)

    assert result.provider_ref == "vulfix-7-x"


async def test_command_deletes_by_reference(host: FakeHost) -> None:
    config = SnapshotConfig(
        provider="command",
        create=[sys.executable, "-c", SILENT],
        delete=[sys.executable, "-c", PRINTS_A_REFERENCE, "--id", "{ref}", "{job_id}"],
    )
    provider = build_snapshot_provider(config, host.runner())

    result = await provider.delete("snap-0042", 9)

    assert result.outcome == "success"
    assert result.reason == "snapshot snap-0042 deleted"
    assert result.commands[0].argv[3:] == ("--id", "snap-0042", "9")


async def test_command_refuses_a_reference_that_reads_as_an_option(host: FakeHost) -> None:
    config = SnapshotConfig(
        provider="command", create=[sys.executable], delete=[sys.executable, "{ref}"]
    )
    provider = build_snapshot_provider(config, host.runner())

    result = await provider.delete("--all", 9)

    assert result.outcome == "failure"
    assert result.commands == ()


async def test_command_without_a_delete_cannot_delete(host: FakeHost) -> None:
    config = SnapshotConfig(provider="command", create=[sys.executable, "-c", SILENT])
    provider = build_snapshot_provider(config, host.runner())

    result = await provider.delete("snap-0042", 9)

    assert result.outcome == "unsupported"
    assert result.reason == "snapshot.delete is not configured: delete snap-0042 by hand"


async def test_a_failing_create_command_is_a_failure(host: FakeHost) -> None:
    script = "import sys; print('quota exceeded for snapshots'); sys.exit(4)"
    config = SnapshotConfig(provider="command", create=[sys.executable, "-c", script])
    provider = build_snapshot_provider(config, host.runner())

    result = await provider.create("vulfix-7", 30, 7)

    assert result.outcome == "failure"
    assert result.exit_code == 4
    assert result.reason.endswith("exited with 4: quota exceeded for snapshots")
    assert result.provider_ref == ""


@pytest.mark.parametrize(
    ("create", "delete", "message"),
    [
        ([], [], "snapshot.create: the command provider needs a create command"),
        (["snap", "{volume}"], [], r"snapshot.create\[1\] '{volume}': unknown placeholder"),
        (["snap", "{ref}"], [], r"snapshot.create\[1\] '{ref}': unknown placeholder {ref}"),
        (["snap", "{name!r}"], [], "unknown placeholder {name}"),
        (["snap", "{name:>9}"], [], "unknown placeholder {name}"),
        (["snap", "{name.upper}"], [], "unknown placeholder {name.upper}"),
        (["snap", "{name"], [], r"snapshot.create\[1\] '{name': "),
        (["snap"], ["rm", "{name}"], r"snapshot.delete\[1\] '{name}': unknown placeholder"),
        (["snap"], ["rm", "{save_days}"], "this command can use {job_id}, {ref}"),
    ],
)
def test_a_bad_command_template_fails_at_start_up(
    host: FakeHost, create: list[str], delete: list[str], message: str
) -> None:
    config = SnapshotConfig(provider="command", create=create, delete=delete)

    with pytest.raises(ConfigError, match=message):
        build_snapshot_provider(config, host.runner())


def test_literal_braces_are_written_doubled(host: FakeHost) -> None:
    config = SnapshotConfig(provider="command", create=["snap", "--tags={{a:1}}", "{name}"])

    assert build_snapshot_provider(config, host.runner()).supported


LVM = SnapshotConfig(provider="lvm", volume_group="vg0", logical_volume="root", size="8G")


async def test_lvm_snapshots_the_configured_volume(host: FakeHost) -> None:
    host.lvm_volume("vg0/root")
    provider = build_snapshot_provider(LVM, host.runner())

    result = await provider.create("vulfix-7-OpenSSL", 30, 7)

    assert result.outcome == "success"
    assert result.provider_ref == "vulfix-7-OpenSSL"
    assert host.invocations() == [
        ["lvcreate", "--snapshot", "--name", "vulfix-7-OpenSSL", "--size", "8G", "vg0/root"]
    ]
    assert host.current()["lvm"]["snapshots"] == ["vg0/vulfix-7-OpenSSL"]


async def test_lvm_deletes_what_it_made(host: FakeHost) -> None:
    host.lvm_volume("vg0/root")
    provider = build_snapshot_provider(LVM, host.runner())
    await provider.create("vulfix-7-OpenSSL", 30, 7)

    result = await provider.delete("vulfix-7-OpenSSL", 8)

    assert result.outcome == "success"
    assert host.invocations()[-1] == ["lvremove", "-y", "vg0/vulfix-7-OpenSSL"]
    assert host.current()["lvm"]["snapshots"] == []


@pytest.mark.parametrize("ref", ["root", "vulfix-7/../root", "-ff", "vulfix-", "vg0/vulfix-7"])
async def test_presets_delete_only_names_the_agent_gives(host: FakeHost, ref: str) -> None:
    provider = build_snapshot_provider(LVM, host.runner())

    result = await provider.delete(ref, 8)

    assert result.outcome == "failure"
    assert result.reason.startswith(f"refusing to delete snapshot {ref!r}")
    assert host.invocations() == []


async def test_an_lvm_failure_carries_lvcreates_exit_code(host: FakeHost) -> None:
    provider = build_snapshot_provider(LVM, host.runner())

    result = await provider.create("vulfix-7", 30, 7)

    assert result.outcome == "failure"
    assert result.exit_code == 5
    assert result.reason == 'lvcreate exited with 5: Failed to find logical volume "vg0/root"'


async def test_a_hanging_snapshot_is_killed_after_the_snapshot_timeout(host: FakeHost) -> None:
    host.lvm_volume("vg0/root")
    host.hang("lvcreate", 30)
    config = SnapshotConfig(provider="lvm", volume_group="vg0", logical_volume="root", timeout=0.5)
    provider = build_snapshot_provider(config, host.runner(timeout=600))

    result = await provider.create("vulfix-7", 30, 7)

    assert result.outcome == "failure"
    assert result.exit_code == 124
    assert re.fullmatch(r"lvcreate did not finish within \d+ s and was killed", result.reason)


async def test_btrfs_snapshots_read_only_into_the_directory(host: FakeHost) -> None:
    host.btrfs_subvolume("/")
    config = SnapshotConfig(provider="btrfs", source="/", directory="/.snapshots/")
    provider = build_snapshot_provider(config, host.runner())

    created = await provider.create("vulfix-7", 30, 7)
    deleted = await provider.delete(created.provider_ref, 8)

    assert (created.outcome, deleted.outcome) == ("success", "success")
    assert host.invocations() == [
        ["btrfs", "subvolume", "snapshot", "-r", "/", "/.snapshots/vulfix-7"],
        ["btrfs", "subvolume", "delete", "/.snapshots/vulfix-7"],
    ]


async def test_zfs_snapshots_the_dataset(host: FakeHost) -> None:
    host.zfs_dataset("rpool/ROOT/ubuntu")
    provider = build_snapshot_provider(
        SnapshotConfig(provider="zfs", dataset="rpool/ROOT/ubuntu"), host.runner()
    )

    created = await provider.create("vulfix-7", 30, 7)
    deleted = await provider.delete("vulfix-7", 8)
    missing = await provider.delete("vulfix-7", 9)

    assert (created.outcome, deleted.outcome, missing.outcome) == ("success", "success", "failure")
    assert host.invocations()[:2] == [
        ["zfs", "snapshot", "rpool/ROOT/ubuntu@vulfix-7"],
        ["zfs", "destroy", "rpool/ROOT/ubuntu@vulfix-7"],
    ]
    assert missing.reason == (
        "zfs destroy exited with 1: could not find any snapshots to destroy; check snapshot names."
    )


async def test_dry_run_snapshots_nothing(host: FakeHost) -> None:
    provider = build_snapshot_provider(LVM, host.runner(dry_run=True))

    result = await provider.create("vulfix-7", 30, 7)

    assert result.outcome == "success"
    assert result.provider_ref == "vulfix-7"
    assert result.reason == "dry run: would create snapshot vulfix-7"
    assert host.invocations() == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SnapshotConfig(provider="lvm", logical_volume="root"), "snapshot.volume_group"),
        (SnapshotConfig(provider="lvm", volume_group="vg0"), "snapshot.logical_volume"),
        (
            SnapshotConfig(provider="lvm", volume_group="-vg", logical_volume="root"),
            "snapshot.volume_group",
        ),
        (
            SnapshotConfig(provider="lvm", volume_group="vg0", logical_volume="root", size="-5G"),
            "snapshot.size",
        ),
        (SnapshotConfig(provider="btrfs", directory="snapshots"), "snapshot.directory"),
        (SnapshotConfig(provider="btrfs", source=""), "snapshot.source"),
        (SnapshotConfig(provider="zfs"), "snapshot.dataset"),
        (SnapshotConfig(provider="zfs", dataset="rpool/"), "snapshot.dataset"),
    ],
)
def test_a_preset_missing_its_settings_fails_at_start_up(
    host: FakeHost, config: SnapshotConfig, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_snapshot_provider(config, host.runner())
