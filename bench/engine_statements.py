"""Where the engine's time goes, statement by statement, with agents sharing transactions.

`bench/engine_jobs.py` drives one host at a time, so every operation commits alone. Here
`--agents` hosts at once drive the engine's agent port (a woken poll, then reports that take
the next job), so operations share transactions as they do under `vulfix serve`
(`store/group_commit.py`). Each hot statement's run on the driver is timed, Python
conversions included, and so is each COMMIT. Reported per job, against the engine's whole
CPU per job in the same run; the timing itself adds about 1 us a statement. In-process, fewer
operations share a COMMIT than under a loaded server, where nearly every one holds 32.

Usage: python bench/engine_statements.py [--hosts 4000] [--agents 64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine_jobs import prepare, shared_cpu_per_job  # noqa: E402

from vulfix.store import hot_statements, inline_sqlite  # noqa: E402


class Timings:
    """Seconds and calls per statement, and for COMMIT."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget what was timed so far."""
        self.statements: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        self.commits = [0, 0.0]

    def time_statements(self, run: Callable[..., Any]) -> Callable[..., Any]:
        def timed(driver: Any, plan: Any, given: dict[str, Any]) -> Any:
            began = time.perf_counter()
            try:
                return run(driver, plan, given)
            finally:
                # The time first: the key below costs more than a statement for a long one.
                elapsed = time.perf_counter() - began
                spent = self.statements[" ".join(plan.sql.split())]
                spent[0] += 1
                spent[1] += elapsed

        return timed

    def time_commits(self, commit: Callable[..., Any]) -> Callable[..., Any]:
        async def timed(connection: Any) -> Any:
            began = time.perf_counter()
            try:
                return await commit(connection)
            finally:
                self.commits[0] += 1
                self.commits[1] += time.perf_counter() - began

        return timed


async def shared_run(path: Path, hosts: int, agents: int, timings: Timings) -> float:
    """CPU seconds per job with `agents` hosts reporting at once; `timings` keeps only the
    jobs' statements and commits, not those of setting up the task."""
    prepared = await prepare(path, hosts)
    timings.clear()
    return await shared_cpu_per_job(prepared, agents)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=4000)
    parser.add_argument("--agents", type=int, default=64)
    args = parser.parse_args()
    timings = Timings()
    # Wrapped for this process only: the bench's own instrument, not the engine's code.
    hot_statements._run_on_driver = timings.time_statements(hot_statements._run_on_driver)
    inline_sqlite.Connection.commit = timings.time_commits(  # type: ignore[method-assign]
        inline_sqlite.Connection.commit
    )
    with tempfile.TemporaryDirectory() as tmp:
        per_job = asyncio.run(shared_run(Path(tmp) / "engine.db", args.hosts, args.agents, timings))
    jobs = 2 * args.hosts
    print(f"engine, {args.agents} agents sharing transactions: {per_job * 1e6:.0f} us CPU a job")
    print(" us/job  per job  us each  statement")
    timed = 0.0
    ranked = sorted(timings.statements.items(), key=lambda item: -item[1][1])
    for sql, (calls, seconds) in ranked:
        timed += seconds
        if calls >= jobs / 10:  # rarer ones are left out of the list, not of the sums
            print(
                f"{seconds / jobs * 1e6:7.1f}  {calls / jobs:7.2f}  {seconds / calls * 1e6:7.1f}"
                f"  {sql[:110]}"
            )
    commits, commit_seconds = timings.commits
    print(
        f"statements {timed / jobs * 1e6:.0f} us a job; COMMIT {commit_seconds / jobs * 1e6:.0f} "
        f"us a job ({commits / jobs:.2f} a job); the rest of the engine "
        f"{(per_job - (timed + commit_seconds) / jobs) * 1e6:.0f} us a job"
    )


if __name__ == "__main__":
    main()
