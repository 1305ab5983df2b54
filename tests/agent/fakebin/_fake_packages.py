"""Fake package tools: apt-get, dpkg-query, dnf, yum, zypper, rpm and apk.

`state["packages"][name]` holds `versions` (every installed instance; empty when the package
is known to the repositories but not installed), `available` (what an upgrade installs; absent
when the repositories have nothing newer) and, for dpkg, `status`. Each tool prints what the
real one prints in the cases the agent meets, and exits with the same code.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from _fake_state import Invocation, option_value, positional, say, unescape

APT_VALUE_OPTIONS = frozenset({"-o", "-c", "-t"})


def _upgrade(package: dict[str, Any]) -> tuple[str, str] | None:
    """Install the available version; (old, new) when something changed."""
    old = package["versions"][-1] if package["versions"] else ""
    new = package.get("available")
    if not package["versions"] or not new or new == old:
        return None
    package["versions"] = [new]
    return old, new


def apt_get(call: Invocation) -> int:
    words = positional(call.args, APT_VALUE_OPTIONS)
    packages = call.state["packages"]
    if words[:1] == ["update"]:
        say("Hit:1 http://deb.example.org stable InRelease", "Reading package lists... Done")
        return 0
    if words[:1] != ["install"]:
        call.fail(f"E: Invalid operation {' '.join(words[:1])}", 100)
    say("Reading package lists...", "Building dependency tree...")
    changes = []
    for name in words[1:]:
        if name not in packages:
            call.fail(f"E: Unable to locate package {name}", 100)
        package = packages[name]
        if not package["versions"] and "--only-upgrade" in call.args:
            say(f"Skipping {name}, it is not installed and only upgrades are requested.")
        elif (change := _upgrade(package)) is not None:
            changes.append((name, *change))
        else:
            say(f"{name} is already the newest version ({package['versions'][-1]}).")
    if changes and "-y" not in call.args:
        call.fail("Do you want to continue? [Y/n] Abort.", 1)
    say(f"{len(changes)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
    for name, old, new in changes:
        say(f"Unpacking {name} ({new}) over ({old}) ...", f"Setting up {name} ({new}) ...")
    call.save()
    return 0


def dpkg_query(call: Invocation) -> int:
    show_format = option_value(call.args, "--showformat", "-f")
    template = unescape(show_format or "${binary:Package}\t${Version}\n")
    exit_code = 0
    for name in positional(call.args, frozenset({"-f"})):
        package = call.state["packages"].get(name)
        if package is None or not package["versions"]:
            print(f"dpkg-query: no packages found matching {name}", file=sys.stderr)
            exit_code = 1
            continue
        status = package.get("status", "install ok installed")
        for version in package["versions"]:
            line = template.replace("${Status}", status).replace("${Version}", version)
            sys.stdout.write(line.replace("${binary:Package}", name))
    return exit_code


def rpm(call: Invocation) -> int:
    template = unescape(option_value(call.args, "--qf", "--queryformat") or "%{NAME}\n")
    exit_code = 0
    for name in positional(call.args, frozenset({"--qf", "--queryformat"})):
        package = call.state["packages"].get(name)
        if package is None or not package["versions"]:
            say(f"package {name} is not installed")
            exit_code = 1
            continue
        for evr in package["versions"]:
            epoch_match = re.match(r"(\d+):", evr)
            epoch = epoch_match.group(1) if epoch_match else "(none)"
            version, _, release = evr[epoch_match.end() if epoch_match else 0 :].rpartition("-")
            fields = {"NAME": name, "EPOCH": epoch, "VERSION": version, "RELEASE": release}
            sys.stdout.write(_query_format(template, fields))
    return exit_code


def _query_format(template: str, fields: dict[str, str]) -> str:
    return re.sub(r"%\{(\w+)\}", lambda match: fields[match.group(1)], template)


def dnf(call: Invocation) -> int:
    words = positional(call.args)
    if words[:1] not in (["upgrade"], ["update"]):
        call.fail(f"No such command: {' '.join(words[:1])}.", 2)
    changes = []
    for name in words[1:]:
        package = call.state["packages"].get(name)
        if package is None:
            call.fail(f"No match for argument: {name}\nError: No packages marked for upgrade.", 1)
        if not package["versions"]:
            call.fail(f"Package {name} available, but not installed.\nError: No match.", 1)
        if (change := _upgrade(package)) is not None:
            changes.append(f"  {name}-{change[1]}")
    if changes and "-y" not in call.args:
        call.fail("Is this ok [y/N]: Operation aborted.", 1)
    say("Dependencies resolved.", *(["Upgraded:", *changes] if changes else ["Nothing to do."]))
    say("Complete!")
    call.save()
    return 0


def yum(call: Invocation) -> int:
    words = positional(call.args)
    if words[:1] != ["update"]:
        call.fail(f"No such command: {' '.join(words[:1])}.", 1)
    changes = []
    for name in words[1:]:
        package = call.state["packages"].get(name)
        if package is None or not package["versions"]:
            say(f"No package {name} available.")  # and yum still exits 0
        elif (change := _upgrade(package)) is not None:
            changes.append(f"  {name}.x86_64 0:{change[1]}")
    if changes and "-y" not in call.args:
        call.fail("Is this ok [y/d/N]: Exiting on user command", 1)
    say(*(["Updated:", *changes, "Complete!"] if changes else ["No packages marked for update"]))
    call.save()
    return 0


def zypper(call: Invocation) -> int:
    words = positional(call.args)
    if words[:1] not in (["update"], ["up"]):
        call.fail(f"Unknown command '{' '.join(words[:1])}'", 1)
    changes = []
    for name in words[1:]:
        package = call.state["packages"].get(name)
        if package is None:
            call.fail(f"Package '{name}' not found.", 104)
        if _upgrade(package) is not None:
            changes.append(name)
    if changes and "--non-interactive" not in call.args:
        call.fail("Continue? [y/n/v/...? shows all options] (y): n", 1)
    say("Loading repository data...", "Reading installed packages...")
    if changes:
        say("The following packages are going to be upgraded:", "  " + " ".join(changes))
    else:
        say("Nothing to do.")
    call.save()
    return 0


def apk(call: Invocation) -> int:
    words = positional(call.args)
    packages = call.state["packages"]
    if words[:1] == ["update"]:
        say("fetch https://dl-cdn.example.org/v3.19/main/x86_64/APKINDEX.tar.gz")
        say("OK: 23370 distinct packages available")
        return 0
    if words[:1] == ["list"]:
        for name in words[1:]:
            for version in packages.get(name, {}).get("versions", []):
                say(f"{name}-{version} x86_64 {{{name}}} (MIT) [installed]")
        return 0
    if words[:1] != ["upgrade"]:
        call.fail(f"apk: unknown command '{' '.join(words[:1])}'", 1)
    for name in words[1:]:
        if not packages.get(name, {}).get("versions"):
            call.fail(f"ERROR: unable to select packages:\n  {name} (no such package)", 1)
    changes = [(name, change) for name in words[1:] if (change := _upgrade(packages[name]))]
    for index, (name, (old, new)) in enumerate(changes, start=1):
        say(f"({index}/{len(changes)}) Upgrading {name} ({old} -> {new})")
    say("OK: 12 MiB in 20 packages")
    call.save()
    return 0


TOOLS: dict[str, Callable[[Invocation], int]] = {
    "apt-get": apt_get,
    "dpkg-query": dpkg_query,
    "rpm": rpm,
    "dnf": dnf,
    "yum": yum,
    "zypper": zypper,
    "apk": apk,
}


def main() -> None:
    call = Invocation()
    sys.exit(TOOLS[call.program](call))
