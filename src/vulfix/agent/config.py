"""The host agent's configuration: defaults, then `agent.toml`, then command-line flags.

Every field is documented in `docs/agent.md`. Unknown keys are refused, so a misspelt option
fails at start-up instead of silently keeping its default.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

PackageManagerName = Literal["auto", "apt", "dnf", "yum", "zypper", "apk"]
SnapshotProviderName = Literal["none", "command", "lvm", "btrfs", "zfs"]

DEFAULT_STATE_DIR = "/var/lib/vulfix-agent"


class ConfigError(Exception):
    """The configuration file or a flag is unusable; the message names the field."""


class SnapshotConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    provider: SnapshotProviderName = "none"
    # `command` provider: argument lists (never shell strings). `create` may use `{name}`,
    # `{save_days}` and `{job_id}`; `delete` may use `{ref}` (what `create` reported) and
    # `{job_id}`, as the snapshot's name and lifetime are no longer known when it is deleted.
    create: list[str] = msgspec.field(default_factory=list)
    delete: list[str] = msgspec.field(default_factory=list)
    # `lvm` preset.
    volume_group: str = ""
    logical_volume: str = ""
    size: str = "5G"
    # `btrfs` preset: the subvolume to snapshot and where snapshots go.
    source: str = "/"
    directory: str = "/.snapshots"
    # `zfs` preset.
    dataset: str = ""
    timeout: float = 600.0


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    server: str = ""
    enroll_token: str = ""
    # A CA bundle to trust for an https server; without it, certifi's bundle.
    ca_file: str | None = None
    # Holds `state.json` (identity, host token) and `journal.json`, both mode 0600.
    state_dir: str = DEFAULT_STATE_DIR
    package_manager: PackageManagerName = "auto"
    # Where the OS family is read from (`ID` and `ID_LIKE`).
    os_release: str = "/etc/os-release"
    # The Quuid to enrol as, to claim a host imported from an inventory; otherwise the server
    # gives one. Kept in the state file after the first enrolment.
    quuid: str | None = None
    # Overrides of the facts the agent reports at enrolment.
    os_family: str = ""
    host_name: str = ""
    host_ip: str = ""
    machine_type: str | None = None
    instance_id: str | None = None
    # Seconds a single command may run before it is killed.
    command_timeout: float = 1800.0
    # Windows: the folder holding `<KbNumber>.msu` installers.
    kb_directory: str = "C:\\vulfix\\kb"
    dry_run: bool = False
    snapshot: SnapshotConfig = msgspec.field(default_factory=SnapshotConfig)


def load_config(path: Path | None, overrides: dict[str, Any]) -> AgentConfig:
    """Defaults, then the TOML file at `path` (if any), then the non-None `overrides`."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        config = msgspec.convert(values, AgentConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path or 'configuration'}: {exc}") from exc
    if not config.server:
        raise ConfigError("no server: pass --server URL or set server in the configuration")
    return config
