"""FixMethod 0 with packages: upgrade the vulnerable packages, then prove they are fixed.

The installed versions are read first, so a package that is missing fails the job before
anything changes, and one that is already fixed is left alone. Only the rest are upgraded,
in one command, and read again: each must now be at least its fixed version. When several
versions of a package are installed (kernels, multilib), the newest one counts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from vulfix.agent.commands import CommandResult
from vulfix.agent.executors.package_managers import PackageManager
from vulfix.agent.executors.versions import VersionScheme, at_least, compare
from vulfix.agent.executors.work_result import WorkResult, command_failed, failed, succeeded
from vulfix.agent_protocol import Package

# What the five package managers accept as a name (Debian's `pkg:arch` included), minus
# anything that could be read as an option (`-o ...`), a version pin (`=`), a release (`/`)
# or a glob (`*`): the name comes from the server and goes on a command line.
PACKAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+~-]{0,199}(?::[A-Za-z0-9_-]{1,40})?")


async def upgrade_packages(
    manager: PackageManager, packages: Sequence[Package], *, dry_run: bool
) -> WorkResult:
    if not packages:
        return failed("the fix names no package to upgrade")
    for package in packages:
        if not PACKAGE_NAME.fullmatch(package.name):
            return failed(
                f"refusing to pass {package.name!r} to {manager.name}: not a package name"
            )
    scheme = manager.version_scheme
    commands: list[CommandResult] = []
    before: dict[str, str] = {}
    pending: list[Package] = []
    for package in packages:
        query = await manager.installed_versions(package.name)
        commands.append(query.query)
        if query.query_failed:
            return command_failed(query.query, commands)
        if not query.versions:
            return failed(f"{package.name} is not installed, so it cannot be upgraded", commands)
        before[package.name] = newest(scheme, query.versions)
        if not _fixed(scheme, before[package.name], package.fixed_version):
            pending.append(package)
    if not pending:
        done = ", ".join(f"{name} {version}" for name, version in before.items())
        return succeeded(f"already fixed: {done}", commands)

    names = list(dict.fromkeys(package.name for package in pending))
    upgrade = await manager.upgrade(names)
    commands.extend(upgrade.commands)
    if upgrade.failure is not None:
        return command_failed(upgrade.failure, commands)
    if dry_run:
        return succeeded(f"dry run: would upgrade {', '.join(names)}; nothing changed", commands)
    return await _verify(manager, pending, before, commands)


async def _verify(
    manager: PackageManager,
    pending: Sequence[Package],
    before: dict[str, str],
    commands: list[CommandResult],
) -> WorkResult:
    scheme = manager.version_scheme
    upgraded: list[str] = []
    vulnerable: list[str] = []
    for package in pending:
        query = await manager.installed_versions(package.name)
        commands.append(query.query)
        if query.query_failed:
            return command_failed(query.query, commands)
        if not query.versions:
            return failed(f"{package.name} is no longer installed after the upgrade", commands)
        now = newest(scheme, query.versions)
        change = f"{package.name} {before[package.name]} -> {now}"
        if not package.fixed_version.strip():
            upgraded.append(f"{change} (no fixed version to check against)")
        elif _fixed(scheme, now, package.fixed_version):
            upgraded.append(change)
        else:
            vulnerable.append(f"{package.name} is {now}, fixed in {package.fixed_version}")
    if vulnerable:
        return failed("still vulnerable: " + "; ".join(vulnerable), commands)
    return succeeded("upgraded " + ", ".join(upgraded), commands)


def _fixed(scheme: VersionScheme, installed: str, fixed_version: str) -> bool:
    # Without a fixed version nothing proves a package fixed before the upgrade; after it,
    # `_verify` accepts the newest build and says that it could not check.
    return bool(fixed_version.strip()) and at_least(scheme, installed, fixed_version)


def newest(scheme: VersionScheme, versions: Sequence[str]) -> str:
    return max(versions, key=functools.cmp_to_key(functools.partial(compare, scheme)))
