"""The simulator's event loop: uvloop where it is installed, asyncio's own where not."""

from __future__ import annotations

import asyncio
import sys

import pytest

from vulfix import fast_loop


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_a_fleet_runs_on_uvloop_where_it_is_installed() -> None:
    assert fast_loop.run(loop_module()).startswith("uvloop")


def test_without_uvloop_asyncios_own_loop_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as where it is not installed (Windows)
    assert fast_loop.run(loop_module()).startswith("asyncio")
