"""The event loop for a process that speaks for a whole fleet: uvloop where it is installed
(`uvicorn[standard]` brings it everywhere but Windows), else asyncio's own.

`vulfix serve` runs on uvloop through uvicorn. `vulfix simulate` ran on asyncio's loop, and
for about a second of each task over 10 000 hosts it, not the server, was the busy side
(`bench/agents.py --trace`); on uvloop its client costs 75 to 78 us a report against 82.5 to
83 (256 agents, the collector tuned as the simulator tunes it).
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
