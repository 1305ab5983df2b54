"""The engine's instructions per agent job, counted by valgrind: a measure that does not move
with the machine's load.

On a shared machine a whole run's CPU time moves by a fifth between runs of one commit, so a
change worth a few percent cannot be told from noise by timing it. Callgrind counts the
instructions a process executes instead, which repeat to within about half a percent. The
engine's part is isolated by difference: the same prepared task, with `--small` and then
`--large` of its hosts run through the engine's agent port as `bench/engine_statements.py`
drives them (hosts reporting at once, sharing transactions); everything else (start-up,
imports, the task's set-up) is the same in both runs and cancels out. The baseline, counted
the same way in the same run: plain `sqlite3` writing the rows a job changes, a transaction
each (`bench/engine_jobs.py`'s baseline).

Needs valgrind (Debian package `valgrind`). About three minutes.

Usage: python bench/engine_instructions.py [--hosts 600] [--small 200] [--large 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine_jobs import baseline_run, prepare, run_hosts_at_once  # noqa: E402

AGENTS = 64


async def engine_work(path: Path, hosts: int, run: int) -> None:
    """A task over `hosts`; `run` of them go through their jobs, AGENTS at a time."""
    prepared = await prepare(path, hosts)
    await run_hosts_at_once(prepared, prepared.names[:run], AGENTS)
    await prepared.engine.dispose()


def counted(*arguments: str) -> int:
    """Instructions this script executes with `arguments`, under callgrind."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, *arguments],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # string hashes move dicts' work around
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no count from callgrind: {done.stderr[-2000:]}")
    return int(found.group(1))


def per_job(kind: str, hosts: int, small: int, large: int) -> float:
    """Instructions per job of `kind` ("engine" or "baseline"): two jobs a host."""
    counts = [counted("--worker", kind, str(hosts), str(run)) for run in (small, large)]
    return (counts[1] - counts[0]) / (2 * (large - small))


def worker(kind: str, hosts: int, run: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "engine":
            asyncio.run(engine_work(Path(tmp) / "engine.db", hosts, run))
        else:
            baseline_run(Path(tmp) / "floor.db", run)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=600)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=600)
    args = parser.parse_args()
    if not 0 <= args.small < args.large <= args.hosts:
        parser.error("need 0 <= --small < --large <= --hosts")
    engine = per_job("engine", args.hosts, args.small, args.large)
    floor = per_job("baseline", args.hosts, args.small, args.large)
    print(f"engine: {engine:,.0f} instructions per job")
    print(f"plain sqlite3, a job's rows in a transaction: {floor:,.0f} instructions per job")
    print(f"ratio {engine / floor:.1f}")


if __name__ == "__main__":
    main()
