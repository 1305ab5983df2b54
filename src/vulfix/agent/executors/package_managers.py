"""The host's package manager: how it upgrades named packages and tells what is installed.

Every command upgrades exactly the packages it is given and never asks a question. The
version a package is upgraded to is the newest the configured repositories offer, never a
pinned `fixed_version`: that is the build the distribution supports with its dependencies,
and `package_upgrade` then checks that it is at least the fixed version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from vulfix.agent.commands import CommandResult, CommandRunner
from vulfix.agent.config import PackageManagerName
from vulfix.agent.executors.versions import VersionScheme

APT_FAMILIES = frozenset({"debian", "ubuntu", "kali", "deepin", "uos"})
RPM_FAMILIES = frozenset(
    {"rhel", "centos", "rocky", "almalinux", "fedora", "ol", "tencentos", "opencloudos"}
)
ZYPPER_FAMILIES = frozenset({"suse", "opensuse", "opensuse-leap", "opensuse-tumbleweed", "sles"})
APK_FAMILIES = frozenset({"alpine"})

# Exit codes zypper(8) documents as informational (100-107: updates or a reboot pending,
# some repository skipped, ...): the transaction ran, and the version check decides.
ZYPPER_INFORMATIONAL_EXITS = range(100, 108)
# dpkg-query and rpm answer 1 for "not installed"; anything else means the query broke.
QUERY_NOT_INSTALLED_EXIT = 1


@dataclass(frozen=True, slots=True)
class InstalledVersions:
    query: CommandResult
    # Every installed instance (kernels and multilib packages can have several); none when
    # the package is not installed.
    versions: tuple[str, ...]

    @property
    def query_failed(self) -> bool:
        return self.query.timed_out or self.query.exit_code not in (0, QUERY_NOT_INSTALLED_EXIT)


@dataclass(frozen=True, slots=True)
class UpgradeRun:
    commands: tuple[CommandResult, ...]
    # The command that failed the upgrade, if one did.
    failure: CommandResult | None


class PackageManager(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version_scheme(self) -> VersionScheme: ...

    async def upgrade(self, packages: Sequence[str]) -> UpgradeRun: ...

    async def installed_versions(self, package: str) -> InstalledVersions: ...


def _finished(*commands: CommandResult) -> UpgradeRun:
    """The last command is the upgrade proper; what ran before it only prepared it."""
    last = commands[-1]
    return UpgradeRun(commands, None if last.succeeded else last)


class Apt:
    name = "apt"
    version_scheme: VersionScheme = "deb"

    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner

    async def upgrade(self, packages: Sequence[str]) -> UpgradeRun:
        # Without fresh lists apt only knows yesterday's candidates. A failed refresh (one
        # unreachable third-party repository) does not stop the upgrade: the main archive
        # may still carry the fix, and the version check tells.
        refresh = await self._runner.run(["apt-get", "update"])
        # --only-upgrade never installs a package that is not there; confdef+confold keep
        # the administrator's configuration files without asking; the lock timeout waits
        # for unattended-upgrades instead of failing at once (older apt ignores the key).
        upgrade = await self._runner.run(
            [
                "apt-get", "install", "--only-upgrade", "-y",
                "-o", "DPkg::Lock::Timeout=300",
                "-o", "Dpkg::Options::=--force-confdef",
                "-o", "Dpkg::Options::=--force-confold",
                *packages,
            ]
        )  # fmt: skip
        return _finished(refresh, upgrade)

    async def installed_versions(self, package: str) -> InstalledVersions:
        # The status column tells an installed package from one removed with its
        # configuration kept (`deinstall ok config-files`), which still has a version.
        query = await self._runner.run(
            ["dpkg-query", "-W", r"--showformat=${Status}\t${Version}\n", package],
            changes_host=False,
        )
        versions = []
        for line in query.output.splitlines():
            status, tab, version = line.partition("\t")
            if tab and status.endswith(" installed") and version.strip():
                versions.append(version.strip())
        return InstalledVersions(query, tuple(versions))


class _RpmDatabase:
    """dnf, yum and zypper all keep rpm's database; only the upgrade command differs."""

    version_scheme: VersionScheme = "rpm"

    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner

    async def installed_versions(self, package: str) -> InstalledVersions:
        query = await self._runner.run(
            ["rpm", "-q", "--qf", r"%{EPOCH}:%{VERSION}-%{RELEASE}\n", package],
            changes_host=False,
        )
        versions = []
        for line in query.output.splitlines():
            epoch, colon, version_release = line.strip().partition(":")
            if not colon or " " in line.strip() or not version_release:
                continue  # "package x is not installed" and other prose
            # rpm prints "(none)" for a package without an epoch.
            versions.append(version_release if epoch == "(none)" else f"{epoch}:{version_release}")
        return InstalledVersions(query, tuple(versions))


class Dnf(_RpmDatabase):
    name = "dnf"

    async def upgrade(self, packages: Sequence[str]) -> UpgradeRun:
        # dnf refreshes expired metadata by itself; `upgrade` touches only installed packages.
        return _finished(await self._runner.run(["dnf", "upgrade", "-y", *packages]))


class Yum(_RpmDatabase):
    name = "yum"

    async def upgrade(self, packages: Sequence[str]) -> UpgradeRun:
        # yum exits 0 even for a package it cannot find: the version check catches that.
        return _finished(await self._runner.run(["yum", "update", "-y", *packages]))


class Zypper(_RpmDatabase):
    name = "zypper"

    async def upgrade(self, packages: Sequence[str]) -> UpgradeRun:
        # `update` with names upgrades only those; repositories refresh themselves when
        # marked autorefresh, as they are by default.
        run = await self._runner.run(["zypper", "--non-interactive", "update", *packages])
        informational = run.exit_code in ZYPPER_INFORMATIONAL_EXITS and not run.timed_out
        return UpgradeRun((run,), None if run.succeeded or informational else run)


class Apk:
    name = "apk"
    version_scheme: VersionScheme = "apk"

    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner

    async def upgrade(self, packages: Sequence[str]) -> UpgradeRun:
        # `apk upgrade NAME...` upgrades just those (and what they need) and leaves the world
        # file alone; `apk add --upgrade` would also mark them as explicitly wanted. As with
        # apt, a failed index refresh leaves the verdict to the version check.
        refresh = await self._runner.run(["apk", "update"])
        upgrade = await self._runner.run(["apk", "upgrade", *packages])
        return _finished(refresh, upgrade)

    async def installed_versions(self, package: str) -> InstalledVersions:
        # Lines read "musl-1.2.4-r2 x86_64 {musl} (MIT) [installed]".
        query = await self._runner.run(["apk", "list", "--installed", package], changes_host=False)
        prefix = f"{package}-"
        versions = []
        for line in query.output.splitlines():
            words = line.split()
            if words and words[0].startswith(prefix) and "[installed]" in words:
                version = words[0][len(prefix) :]
                if version[:1].isdigit():
                    versions.append(version)
        return InstalledVersions(query, tuple(versions))


PACKAGE_MANAGERS: dict[str, Callable[[CommandRunner], PackageManager]] = {
    "apt": Apt,
    "dnf": Dnf,
    "yum": Yum,
    "zypper": Zypper,
    "apk": Apk,
}


def detect_package_manager(families: Sequence[str], dnf_on_path: bool) -> str | None:
    """The package manager for the first of `families` (os family, os-release ID, then
    ID_LIKE) that names a known distribution; None when none does (Windows, say)."""
    for family in (family.lower() for family in families):
        if family in APT_FAMILIES:
            return "apt"
        if family in RPM_FAMILIES:
            return "dnf" if dnf_on_path else "yum"
        if family in ZYPPER_FAMILIES:
            return "zypper"
        if family in APK_FAMILIES:
            return "apk"
    return None


def build_package_manager(
    configured: PackageManagerName,
    runner: CommandRunner,
    *,
    families: Sequence[str],
) -> PackageManager | None:
    """The configured package manager, or the detected one when configured as `auto`."""
    name = (
        detect_package_manager(families, runner.which("dnf") is not None)
        if configured == "auto"
        else configured
    )
    return None if name is None else PACKAGE_MANAGERS[name](runner)
