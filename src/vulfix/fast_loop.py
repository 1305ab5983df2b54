"""The event loop for a process that speaks for a whole fleet: uvloop where it is installed
(`uvicorn[standard]` brings it everywhere but Windows), else asyncio's own.

`vulfix serve` runs on uvloop through uvicorn. `vulfix simulate` ran on asyncio's loop, and
during a task over 10 000 hosts it, not the server, was the busy side for most of the task;
on uvloop the agents' client costs it 7 % less CPU a request (bench/agents.py, "the agents'
client alone").
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`main` to completion on a new event loop, as `asyncio.run` does."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
