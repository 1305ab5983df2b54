"""How many agent operations a shared transaction should hold (`store/group_commit.py`).

`--agents` hosts at once drive the engine's agent port in-process (a woken poll, then reports
that take the next job), as a loaded `vulfix serve` does, with the shared transaction capped
at each `--sizes` in turn. Reported for each cap: the engine's CPU per job, as a ratio to the
first cap's measured in the same run, and how long a full transaction holds SQLite's one
connection, which is how long an API call may wait behind it. The caps are run in turns,
`--rounds` times, each on a fresh database, and each figure is the median of its rounds:
a shared machine's speed drifts over a run.

Usage: python bench/group_commit_size.py [--hosts 4000] [--agents 256] [--sizes 32,64,128,256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine_jobs import prepare, shared_cpu_per_job  # noqa: E402


async def capped_run(path: Path, hosts: int, agents: int, size: int) -> tuple[float, list[float]]:
    """(CPU seconds per job, seconds each full transaction took) with transactions capped at
    `size` operations."""
    prepared = await prepare(path, hosts)
    writes = prepared.store.agent_writes
    writes.max_batch = size
    held: list[float] = []
    commit = writes._commit

    async def timed(batch: list[Any], soon: list[Any]) -> None:  # on this object only
        began = time.perf_counter()
        await commit(batch, soon)
        if len(batch) == size:
            held.append(time.perf_counter() - began)

    writes._commit = timed  # type: ignore[method-assign]
    return await shared_cpu_per_job(prepared, agents), held


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=4000)
    parser.add_argument("--agents", type=int, default=256)
    parser.add_argument("--sizes", default="32,64,128,256")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if max(sizes) > args.agents:
        parser.error("a transaction cannot hold more operations than there are agents")
    cpu: dict[int, list[float]] = {size: [] for size in sizes}
    held: dict[int, list[float]] = {size: [] for size in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for size in sizes:
                path = Path(tmp) / f"engine-{round_}-{size}.db"
                per_job, durations = asyncio.run(capped_run(path, args.hosts, args.agents, size))
                cpu[size].append(per_job)
                held[size] += durations
    baseline = statistics.median(cpu[sizes[0]])
    print(f"{args.hosts} hosts, {args.agents} agents at once; medians of {args.rounds} rounds")
    print(" cap  us CPU/job  ratio  a full transaction: median  p99 (ms)")
    for size in sizes:
        per_job = statistics.median(cpu[size])
        durations = sorted(held[size])
        p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
        print(
            f"{size:4d}  {per_job * 1e6:10.0f}  {per_job / baseline:5.2f}"
            f"  {statistics.median(durations) * 1e3:24.1f}  {p99 * 1e3:4.1f}"
        )


if __name__ == "__main__":
    main()
