"""The job figures on `/metrics` over a long history, as a ratio to a full count of the jobs.

Every `EngineFigures.every` seconds the engine counts jobs by kind, state and outcome. Jobs
are never deleted, so a count of all of them grows with the history, and on SQLite it runs on
the event loop. Here `--history` finished jobs (and a fleet's worth of unfinished ones) lie in
a real store; the store's figures (`SqlFixingStore.job_counts`, `store.job_tally`) are read
once, then again after each of `--rounds` bursts of `--new` jobs (five seconds of a busy
fleet), and the steady refreshes are timed against a plain `sqlite3` GROUP BY over all jobs
in the same run. Both answers must agree.

Usage: python bench/job_figures.py [--history 1000000] [--new 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from vulfix.fixing.agent_port import AgentTimings  # noqa: E402
from vulfix.store.database import create_engine  # noqa: E402
from vulfix.store.fixing_store import SqlFixingStore  # noqa: E402
from vulfix.store.migrate import upgrade  # noqa: E402

KINDS = ("snapshot", "fix", "snapshot_delete")
FINISHED = (("done", "success"), ("done", "failure"), ("expired", "expired"))
UNFINISHED_HOSTS = 10_000
FULL_COUNT = "SELECT kind, state, outcome, COUNT(*) FROM jobs GROUP BY kind, state, outcome"


def add_jobs(db: sqlite3.Connection, count: int, stamp: str, *, unfinished: int = 0) -> None:
    """`count` finished jobs, then `unfinished` leased ones (one per host, as the engine
    keeps them). The account and hosts they name are not written: this connection leaves
    foreign keys unchecked, and no query here reads them."""
    rows = [
        (1, n % UNFINISHED_HOSTS + 1, KINDS[n % 3], *FINISHED[n % 7 % 3], stamp)
        for n in range(count)
    ]
    rows += [(1, host + 1, "fix", "leased", "", stamp) for host in range(unfinished)]
    db.executemany(
        "INSERT INTO jobs (account_id, host_id, kind, state, outcome, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.commit()


def full_count(db: sqlite3.Connection) -> tuple[float, list[tuple[str, str, str, int]]]:
    began = time.perf_counter()
    rows = sorted(db.execute(FULL_COUNT).fetchall())
    return time.perf_counter() - began, rows


async def figures(store: SqlFixingStore) -> tuple[float, list[tuple[str, str, str, int]]]:
    began = time.perf_counter()
    rows = await store.job_counts(datetime.now(UTC))
    return time.perf_counter() - began, rows


async def run(path: Path, history: int, new: int, rounds: int) -> None:
    url = f"sqlite:///{path}"
    upgrade(url)
    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    db = sqlite3.connect(path)
    add_jobs(db, history, stamp, unfinished=UNFINISHED_HOSTS)
    engine = create_engine(url)
    store = SqlFixingStore(engine, AgentTimings(), notify=lambda _hosts: None)
    first, _ = await figures(store)
    steady, plain = [], []
    for _ in range(rounds):
        db.execute("UPDATE jobs SET state = 'done', outcome = 'success' WHERE state = 'leased'")
        add_jobs(db, new, stamp, unfinished=UNFINISHED_HOSTS)  # the fleet's next jobs
        seconds, counted = await figures(store)
        baseline, expected = full_count(db)
        if counted != expected:
            raise AssertionError(f"the figures disagree with a full count: {counted} {expected}")
        steady.append(seconds)
        plain.append(baseline)
    await engine.dispose()
    db.close()
    tally, baseline = statistics.median(steady), statistics.median(plain)
    total = history + rounds * (new + UNFINISHED_HOSTS)
    print(f"{total} jobs in the history, {UNFINISHED_HOSTS} unfinished at each refresh")
    print(f"first refresh of the figures (reads everything once): {first * 1e3:.1f} ms")
    print(f"plain sqlite3 GROUP BY over every job (baseline): {baseline * 1e3:.1f} ms")
    print(
        f"a refresh after {new + UNFINISHED_HOSTS} new jobs: {tally * 1e3:.1f} ms, "
        f"ratio {tally / baseline:.3f} (median of {rounds})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "figures.db", args.history, args.new, args.rounds))


if __name__ == "__main__":
    main()
