"""A held poll's wait in the notifier, as a ratio to the least such a wait can cost.

Every agent poll that finds no job, and every report that asks for the next job and finds
none, waits in `MemoryJobNotifier.wait`: at a task's start a fleet's held polls are woken
together (`hand_over`), and at rest most of them run out. Each is timed here as its own
task, `--hosts` at once, woken or timed out, against the same number of tasks awaiting a
bare future resolved from a timer (what any held wait must at least do), in the same run.

Usage: python bench/notifier_waits.py [--hosts 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from vulfix.agent_api import MemoryJobNotifier  # noqa: E402
from vulfix.fixing.agent_port import JobAssignment, SnapshotWork  # noqa: E402

JOB = JobAssignment(1, 7, 900.0, SnapshotWork("before-fix", 1))


async def woken(hosts: int) -> float:
    notifier = MemoryJobNotifier()
    began = time.process_time()
    held = [asyncio.create_task(notifier.wait(host, 20)) for host in range(hosts)]
    await asyncio.sleep(0)
    notifier.hand_over(dict.fromkeys(range(hosts), JOB))
    await asyncio.gather(*held)
    return (time.process_time() - began) / hosts


async def timed_out(hosts: int) -> float:
    notifier = MemoryJobNotifier()
    began = time.process_time()
    await asyncio.gather(*(notifier.wait(host, 0.02) for host in range(hosts)))
    return (time.process_time() - began) / hosts


async def bare(hosts: int) -> float:
    """A task awaiting a future that a timer resolves: the floor of any held wait."""
    loop = asyncio.get_running_loop()
    began = time.process_time()
    futures = [loop.create_future() for _ in range(hosts)]
    for future in futures:
        loop.call_later(0.02, future.set_result, False)
    await asyncio.gather(*(asyncio.create_task(_awaited(future)) for future in futures))
    return (time.process_time() - began) / hosts


async def _awaited(future: asyncio.Future[bool]) -> bool:
    return await future


async def measure(hosts: int, rounds: int) -> None:
    results: dict[str, list[float]] = {"woken": [], "timed out": [], "bare": []}
    for _ in range(rounds):
        results["woken"].append(await woken(hosts))
        results["timed out"].append(await timed_out(hosts))
        results["bare"].append(await bare(hosts))
    floor = statistics.median(results["bare"])
    print(f"a bare future awaited in a task: {floor * 1e6:.1f} us (median of {rounds})")
    for name in ("woken", "timed out"):
        spent = statistics.median(results[name])
        print(f"a held poll {name}: {spent * 1e6:.1f} us, ratio {spent / floor:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    uvloop.run(measure(args.hosts, args.rounds))


if __name__ == "__main__":
    main()
