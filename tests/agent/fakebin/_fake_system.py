"""Fake system tools: systemctl, lvcreate, lvremove, btrfs, zfs and wusa.exe.

`state["services"][unit]` holds `enabled` (what `is-enabled` prints), `active` (what
`is-active` prints) and `restarts` (a socket or timer starts it again right after a stop).
`state["lvm"]`, `state["btrfs"]` and `state["zfs"]` hold the origins that may be snapshotted
and the snapshots that exist; `state["wusa"]` maps a KB number to wusa's exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from _fake_state import Invocation, option_value, positional, say

ENABLED_EXIT_ZERO = frozenset({"enabled", "enabled-runtime", "static", "indirect", "alias"})
NO_INSTALL_SECTION = (
    "The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
    "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
    "units). This means they are not meant to be enabled or disabled using systemctl."
)


def _unit(call: Invocation, name: str) -> dict[str, Any] | None:
    services: dict[str, Any] = call.state["services"]
    return services.get(name) or services.get(name.removesuffix(".service"))


def systemctl(call: Invocation) -> int:
    words = positional(call.args)
    command, names = words[0], words[1:]
    unit_name = names[0] if names else ""
    unit = _unit(call, unit_name)
    full_name = unit_name if "." in unit_name else f"{unit_name}.service"
    if command == "disable":
        if unit is None:
            call.fail(f"Failed to disable unit: Unit file {full_name} does not exist.", 1)
        if unit["enabled"] in ("enabled", "enabled-runtime"):
            unit["enabled"] = "disabled"
            say(f'Removed "/etc/systemd/system/multi-user.target.wants/{full_name}".')
        elif unit["enabled"] in ("static", "indirect", "generated"):
            print(NO_INSTALL_SECTION, file=sys.stderr)
        if "--now" in call.args and not unit.get("restarts"):
            unit["active"] = "inactive"
        call.save()
        return 0
    if command == "is-enabled":
        if unit is None:
            call.fail(
                f"Failed to get unit file state for {full_name}: No such file or directory", 1
            )
        say(unit["enabled"])
        return 0 if unit["enabled"] in ENABLED_EXIT_ZERO else 1
    if command == "is-active":
        state = "inactive" if unit is None else unit["active"]
        say(state)
        return 0 if state == "active" else 3
    call.fail(f"Unknown command verb {command}.", 1)


def lvcreate(call: Invocation) -> int:
    lvm = call.state["lvm"]
    name = option_value(call.args, "--name", "-n") or ""
    origin = positional(call.args, frozenset({"--name", "-n", "--size", "-L"}))[0]
    group = origin.partition("/")[0]
    if "--snapshot" not in call.args or option_value(call.args, "--size", "-L") is None:
        call.fail("  Please specify either size or extents with snapshots.", 3)
    if origin not in lvm["volumes"]:
        call.fail(f'  Failed to find logical volume "{origin}"', 5)
    if f"{group}/{name}" in lvm["snapshots"]:
        call.fail(f'  Logical Volume "{name}" already exists in volume group "{group}"', 5)
    lvm["snapshots"].append(f"{group}/{name}")
    call.save()
    say(f'  Logical volume "{name}" created.')
    return 0


def lvremove(call: Invocation) -> int:
    lvm = call.state["lvm"]
    target = positional(call.args)[0]
    if target not in lvm["snapshots"]:
        call.fail(f'  Failed to find logical volume "{target}"', 5)
    if "-y" not in call.args:
        call.fail(f"Do you really want to remove active logical volume {target}? [y/n]: n", 5)
    lvm["snapshots"].remove(target)
    call.save()
    say(f'  Logical volume "{target.partition("/")[2]}" successfully removed.')
    return 0


def btrfs(call: Invocation) -> int:
    subvolumes = call.state["btrfs"]
    words = positional(call.args)
    if words[:2] == ["subvolume", "snapshot"]:
        source, target = words[2], words[3]
        if source not in subvolumes["sources"]:
            call.fail(f"ERROR: Not a Btrfs subvolume: {source}", 1)
        kind = "readonly snapshot" if "-r" in call.args else "snapshot"
        subvolumes["snapshots"].append(target)
        call.save()
        say(f"Create a {kind} of '{source}' in '{target}'")
        return 0
    if words[:2] == ["subvolume", "delete"]:
        target = words[2]
        if target not in subvolumes["snapshots"]:
            call.fail(f"ERROR: Could not statfs: No such file or directory: '{target}'", 1)
        subvolumes["snapshots"].remove(target)
        call.save()
        say(f"Delete subvolume (no-commit): '{target}'")
        return 0
    call.fail(f"btrfs: unknown token '{' '.join(words[:2])}'", 1)


def zfs(call: Invocation) -> int:
    pool = call.state["zfs"]
    command, target = positional(call.args)[:2]
    dataset = target.partition("@")[0]
    if command == "snapshot":
        if dataset not in pool["datasets"]:
            call.fail(f"cannot open '{dataset}': dataset does not exist", 1)
        if target in pool["snapshots"]:
            call.fail(f"cannot create snapshot '{target}': dataset already exists", 1)
        pool["snapshots"].append(target)
        call.save()
        return 0
    if command == "destroy":
        if target not in pool["snapshots"]:
            call.fail("could not find any snapshots to destroy; check snapshot names.", 1)
        pool["snapshots"].remove(target)
        call.save()
        return 0
    call.fail(f"unrecognized command '{command}'", 2)


def wusa(call: Invocation) -> int:
    # Linux exit codes stop at 255, so 3010 and 2359302 cannot be played here; the tests
    # judge those from CommandResult values instead.
    kb = call.args[0].rpartition("\\")[2].removesuffix(".msu")
    return int(call.state.get("wusa", {}).get(kb, 0))


TOOLS: dict[str, Callable[[Invocation], int]] = {
    "systemctl": systemctl,
    "lvcreate": lvcreate,
    "lvremove": lvremove,
    "btrfs": btrfs,
    "zfs": zfs,
    "wusa.exe": wusa,
}


def main() -> None:
    call = Invocation()
    sys.exit(TOOLS[call.program](call))
