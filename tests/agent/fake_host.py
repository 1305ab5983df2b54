"""A pretend host for the agent's executors: real subprocesses, fake programs, JSON state.

`FakeHost` writes the state file the programs in `fakebin/` read and change, and hands out a
`CommandRunner` whose PATH holds only `fakebin/` and the Python that runs the fakes, so no
test can ever reach this machine's own apt-get, rpm or systemctl. Every invocation is logged;
`invocations()` returns the argv lists in order, for tests to assert exact commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from vulfix.agent.commands import CommandRunner

FAKEBIN = Path(__file__).parent / "fakebin"


class FakeHost:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_path = root / "host.json"
        self.log_path = root / "invocations.jsonl"
        self.log_path.touch()
        # The fakes' `#!/usr/bin/env python3` finds this interpreter, and nothing else of the
        # directory it lives in (a system Python's would bring the real apt-get along).
        self.interpreter_dir = root / "python-bin"
        self.interpreter_dir.mkdir()
        (self.interpreter_dir / "python3").symlink_to(sys.executable)
        self.state: dict[str, Any] = {
            "packages": {},
            "services": {},
            "failures": [],
            "lvm": {"volumes": [], "snapshots": []},
            "btrfs": {"sources": [], "snapshots": []},
            "zfs": {"datasets": [], "snapshots": []},
            "wusa": {},
        }
        self._save()

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{FAKEBIN}:{self.interpreter_dir}",
            "VULFIX_FAKE_HOST": str(self.state_path),
            "VULFIX_FAKE_LOG": str(self.log_path),
            "HOME": str(self.root),
        }

    def runner(self, *, dry_run: bool = False, timeout: float = 60.0) -> CommandRunner:
        return CommandRunner(dry_run=dry_run, timeout=timeout, env=self.env)

    # --- arranging the host ---------------------------------------------------------------

    def package(self, name: str, *installed: str, available: str | None = None) -> None:
        """`installed` versions (none: known to the repositories but not installed)."""
        entry: dict[str, Any] = {"versions": list(installed)}
        if available is not None:
            entry["available"] = available
        self._change(lambda state: state["packages"].__setitem__(name, entry))

    def package_status(self, name: str, status: str) -> None:
        self._change(lambda state: state["packages"][name].__setitem__("status", status))

    def service(
        self, name: str, *, enabled: str = "enabled", active: str = "active", restarts: bool = False
    ) -> None:
        entry = {"enabled": enabled, "active": active, "restarts": restarts}
        self._change(lambda state: state["services"].__setitem__(name, entry))

    def fail(
        self, program: str, exit_code: int, output: str, *, subcommand: str | None = None
    ) -> None:
        """Make `program` (when its arguments include `subcommand`) print `output` to stderr
        and exit with `exit_code` before doing anything."""
        fault = {"program": program, "subcommand": subcommand, "exit": exit_code, "output": output}
        self._change(lambda state: state["failures"].append(fault))

    def hang(self, program: str, seconds: float, *, subcommand: str | None = None) -> None:
        """Make `program` sleep `seconds` and then exit 0 without doing anything."""
        fault = {"program": program, "subcommand": subcommand, "sleep": seconds, "exit": 0}
        self._change(lambda state: state["failures"].append(fault))

    def clear_faults(self) -> None:
        self._change(lambda state: state["failures"].clear())

    def lvm_volume(self, origin: str) -> None:
        self._change(lambda state: state["lvm"]["volumes"].append(origin))

    def btrfs_subvolume(self, path: str) -> None:
        self._change(lambda state: state["btrfs"]["sources"].append(path))

    def zfs_dataset(self, dataset: str) -> None:
        self._change(lambda state: state["zfs"]["datasets"].append(dataset))

    def wusa_exit(self, kb: str, exit_code: int) -> None:
        self._change(lambda state: state["wusa"].__setitem__(kb, exit_code))

    # --- reading what happened ------------------------------------------------------------

    def invocations(self) -> list[list[str]]:
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def current(self) -> dict[str, Any]:
        """The state as the fake programs left it."""
        loaded: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        return loaded

    def installed(self, name: str) -> list[str]:
        versions: list[str] = self.current()["packages"][name]["versions"]
        return versions

    def _change(self, edit: Any) -> None:
        self.state = self.current()
        edit(self.state)
        self._save()

    def _save(self) -> None:
        self.state_path.write_text(json.dumps(self.state, indent=1), encoding="utf-8")
