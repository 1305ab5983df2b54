"""How the agent snapshots its host before a fix, and deletes the snapshot when it expires.

`none` makes no snapshots (the host enrols with `snapshot_supported` false, so the server
records "not supported" and sends it no snapshot jobs). `command` runs argument lists from
the configuration; `lvm`, `btrfs` and `zfs` are `command` with the argument lists written in.

Names. CWP's SnapshotName is free text (`漏洞修复_OpenSSL 远程代码执行 & more`), unusable as
an LV, subvolume or dataset name. The snapshot is therefore named `vulfix-<job id>-<slug>`:
the job id makes it unique, the slug keeps the ASCII letters, digits and dots of the
requested name with every other run of characters turned into one `-`, and the whole is cut
to 64 characters. That alphabet is valid for LVM, btrfs and ZFS alike, cannot collide with
LVM's reserved `_cdata`-style suffixes or `snapshot`/`pvmove` prefixes, and can never be `..`.

References. A preset reports the snapshot's name as its `provider_ref`; `command` reports
the last non-empty line its create command printed (an id from a cloud API, say), or the name
if it printed nothing. A preset deletes only names of that shape inside the configured volume
group, directory or dataset, so a wrong reference cannot remove anything the agent did not make.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Protocol

from vulfix.agent.commands import CommandRunner
from vulfix.agent.config import ConfigError, SnapshotConfig
from vulfix.agent.executors.work_result import (
    WorkResult,
    command_failed,
    failed,
    succeeded,
    unsupported,
)

NAME_PREFIX = "vulfix-"
MAX_NAME = 64
MAX_PROVIDER_REF = 512  # what the server keeps
NOT_IN_NAME_ALPHABET = re.compile(r"[^A-Za-z0-9.]+")
AGENT_SNAPSHOT_NAME = re.compile(r"vulfix-[0-9]+(?:-[A-Za-z0-9.-]+)?")
CREATE_PLACEHOLDERS = frozenset({"name", "save_days", "job_id"})
# At deletion only the reference is known (and the delete job's own id).
DELETE_PLACEHOLDERS = frozenset({"ref", "job_id"})

LVM_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
LVM_SIZE = re.compile(r"[0-9]+(?:\.[0-9]+)?[bBsSkKmMgGtTpPeE]?")
ZFS_DATASET = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*(?<!/)")
ABSOLUTE_PATH = re.compile(r"/[^\x00-\x1f]*")


def host_snapshot_name(requested: str, job_id: int) -> str:
    """The on-host name for the snapshot the server calls `requested`."""
    slug = NOT_IN_NAME_ALPHABET.sub("-", requested).strip("-.")
    name = f"{NAME_PREFIX}{job_id}-{slug}" if slug else f"{NAME_PREFIX}{job_id}"
    return name[:MAX_NAME].rstrip("-.")


class SnapshotProvider(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def supported(self) -> bool: ...

    async def create(self, name: str, save_days: int, job_id: int) -> WorkResult: ...

    async def delete(self, ref: str, job_id: int) -> WorkResult: ...


class NoSnapshots:
    name = "none"
    supported = False

    async def create(self, name: str, save_days: int, job_id: int) -> WorkResult:
        return unsupported("this host takes no snapshots (snapshot.provider is none)")

    async def delete(self, ref: str, job_id: int) -> WorkResult:
        return unsupported("this host takes no snapshots (snapshot.provider is none)")


class CommandSnapshots:
    """Snapshots made and deleted by configured argument lists, one placeholder set each."""

    supported = True

    def __init__(
        self,
        runner: CommandRunner,
        *,
        create: Sequence[str],
        delete: Sequence[str],
        timeout: float,
        name: str = "command",
        own_names_only: bool = False,
    ) -> None:
        if not create:
            raise ConfigError("snapshot.create: the command provider needs a create command")
        _check_template("snapshot.create", create, CREATE_PLACEHOLDERS)
        _check_template("snapshot.delete", delete, DELETE_PLACEHOLDERS)
        self.name = name
        self._runner = runner
        self._create = tuple(create)
        self._delete = tuple(delete)
        self._timeout = timeout
        # Presets: the reference is the name, and only names this agent makes are deleted.
        self._own_names_only = own_names_only

    async def create(self, name: str, save_days: int, job_id: int) -> WorkResult:
        values = {"name": name, "save_days": str(save_days), "job_id": str(job_id)}
        argv = [element.format(**values) for element in self._create]
        result = await self._runner.run(argv, timeout=self._timeout)
        if not result.succeeded:
            return command_failed(result, [result])
        if self._runner.dry_run:
            return succeeded(f"dry run: would create snapshot {name}", [result], name)
        printed = [line.strip() for line in result.output.splitlines() if line.strip()]
        ref = name if self._own_names_only or not printed else printed[-1]
        if len(ref) > MAX_PROVIDER_REF:
            return failed(
                f"the snapshot was made, but the last line its create command printed is "
                f"longer than {MAX_PROVIDER_REF} characters and cannot serve as its "
                f"reference; delete {name} by hand and make the command print a short id",
                [result],
            )
        return succeeded(f"snapshot {ref} created", [result], ref)

    async def delete(self, ref: str, job_id: int) -> WorkResult:
        if not self._delete:
            return unsupported(f"snapshot.delete is not configured: delete {ref} by hand")
        refusal = self._refusal(ref)
        if refusal:
            return failed(f"refusing to delete snapshot {ref!r}: {refusal}")
        values = {"ref": ref, "job_id": str(job_id)}
        argv = [element.format(**values) for element in self._delete]
        result = await self._runner.run(argv, timeout=self._timeout)
        if not result.succeeded:
            return command_failed(result, [result])
        if self._runner.dry_run:
            return succeeded(f"dry run: would delete snapshot {ref}", [result])
        return succeeded(f"snapshot {ref} deleted", [result])

    def _refusal(self, ref: str) -> str:
        if self._own_names_only and not AGENT_SNAPSHOT_NAME.fullmatch(ref):
            return f"not a name this agent gives its snapshots ({NAME_PREFIX}<job id>-...)"
        if not ref or len(ref) > MAX_PROVIDER_REF:
            return f"a reference must hold 1 to {MAX_PROVIDER_REF} characters"
        if ref.startswith("-") or any(ord(char) < 0x20 for char in ref):
            return "it would read as an option or holds control characters"
        return ""


def _check_template(field: str, argv: Sequence[str], allowed: frozenset[str]) -> None:
    known = ", ".join("{" + placeholder + "}" for placeholder in sorted(allowed))
    for index, element in enumerate(argv):
        try:
            parsed = list(string.Formatter().parse(element))
        except ValueError as exc:
            raise ConfigError(f"{field}[{index}] {element!r}: {exc} (write {{{{ for {{)") from exc
        for _, placeholder, spec, conversion in parsed:
            if placeholder is None:
                continue
            if placeholder not in allowed or spec or conversion:
                raise ConfigError(
                    f"{field}[{index}] {element!r}: unknown placeholder {{{placeholder}}}; "
                    f"this command can use {known}"
                )


def _literal(value: str) -> str:
    """A configured value placed in a template, its braces kept as text."""
    return value.replace("{", "{{").replace("}", "}}")


def _lvm(config: SnapshotConfig, runner: CommandRunner) -> CommandSnapshots:
    for field, value in (
        ("volume_group", config.volume_group),
        ("logical_volume", config.logical_volume),
    ):
        if not LVM_NAME.fullmatch(value):
            raise ConfigError(
                f"snapshot.{field}: the lvm provider needs an LVM name, not {value!r}"
            )
    if not LVM_SIZE.fullmatch(config.size):
        raise ConfigError(f"snapshot.size: a size such as 5G, not {config.size!r}")
    group = _literal(config.volume_group)
    return CommandSnapshots(
        runner,
        create=[
            "lvcreate", "--snapshot", "--name", "{name}", "--size", config.size,
            f"{group}/{_literal(config.logical_volume)}",
        ],
        delete=["lvremove", "-y", f"{group}/{{ref}}"],
        timeout=config.timeout,
        name="lvm",
        own_names_only=True,
    )  # fmt: skip


def _btrfs(config: SnapshotConfig, runner: CommandRunner) -> CommandSnapshots:
    for field, value in (("source", config.source), ("directory", config.directory)):
        if not ABSOLUTE_PATH.fullmatch(value):
            raise ConfigError(f"snapshot.{field}: the btrfs provider needs an absolute path")
    source, directory = _literal(config.source), _literal(config.directory.rstrip("/"))
    return CommandSnapshots(
        runner,
        create=["btrfs", "subvolume", "snapshot", "-r", source, directory + "/{name}"],
        delete=["btrfs", "subvolume", "delete", directory + "/{ref}"],
        timeout=config.timeout,
        name="btrfs",
        own_names_only=True,
    )


def _zfs(config: SnapshotConfig, runner: CommandRunner) -> CommandSnapshots:
    if not ZFS_DATASET.fullmatch(config.dataset):
        raise ConfigError(
            f"snapshot.dataset: the zfs provider needs a dataset, not {config.dataset!r}"
        )
    dataset = _literal(config.dataset)
    return CommandSnapshots(
        runner,
        create=["zfs", "snapshot", dataset + "@{name}"],
        delete=["zfs", "destroy", dataset + "@{ref}"],
        timeout=config.timeout,
        name="zfs",
        own_names_only=True,
    )


def build_snapshot_provider(config: SnapshotConfig, runner: CommandRunner) -> SnapshotProvider:
    """The configured provider; ConfigError names the field when its settings are unusable."""
    if config.provider == "none":
        return NoSnapshots()
    if config.provider == "command":
        return CommandSnapshots(
            runner, create=config.create, delete=config.delete, timeout=config.timeout
        )
    if config.provider == "lvm":
        return _lvm(config, runner)
    if config.provider == "btrfs":
        return _btrfs(config, runner)
    return _zfs(config, runner)
