from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vulfix.agent.simulation import FleetSummary
from vulfix.cli import simulate_command as command
from vulfix.cli.simulate_command import simulate_command, summary_lines


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(simulate_command, list(args))
    return result.exit_code, result.output


def test_an_unreadable_or_empty_inventory_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"hosts": [{"HostName": "no quuid"}]}')
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"hosts": [], "vulnerabilities": []}))
    common = ("--server", "http://127.0.0.1:9", "--enroll-token", "t", "--inventory")

    code, output = run(*common, str(broken))
    assert code == 1 and "not an inventory document" in output and "Quuid" in output
    code, output = run(*common, str(empty))
    assert code == 1 and "lists no hosts" in output
    code, output = run(*common, str(empty), "--fail-rate", "1.5")
    assert code == 2 and "--fail-rate" in output


def test_the_summary_counts_jobs_by_kind_and_outcome() -> None:
    summary = FleetSummary(
        enrolled=3, jobs=Counter({("fix", "success"): 5, ("fix", "failure"): 2}), duplicates=1
    )
    lines = summary_lines(summary)
    assert lines[0] == "Hosts enrolled: 3 (refused: 0)"
    assert lines[1] == "Jobs reported: 7"
    assert lines[2].split() == ["fix", "failure", "2"]
    assert lines[3].split() == ["fix", "success", "5"]
    assert "already applied: 1" in lines[4]


def test_the_fleet_runs_on_uvloop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its requests cost the simulator less CPU there (`vulfix.fast_loop`)."""
    loops: list[str] = []

    async def fleet(*_args: Any, **_options: Any) -> FleetSummary:
        loops.append(type(asyncio.get_running_loop()).__module__)
        return FleetSummary(enrolled=1)

    monkeypatch.setattr(command, "run_fleet", fleet)
    inventory = tmp_path / "fleet.json"
    inventory.write_text(
        json.dumps({"hosts": [{"Quuid": "q-1", "HostName": "web-1", "OsFamily": "debian"}]})
    )
    code, output = run(
        "--server", "http://127.0.0.1:9", "--enroll-token", "t", "--inventory", str(inventory)
    )
    assert code == 0, output
    assert "Hosts enrolled: 1" in output and loops[0].startswith("uvloop")
