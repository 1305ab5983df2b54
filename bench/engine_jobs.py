"""The engine's own cost per agent job, in-process: no HTTP, no simulator.

Every host of a one-vulnerability task runs its snapshot and its fix job through the engine's
agent port as the agent API drives it (a woken poll, then reports that take the next job), on a
SQLite file. Reported: CPU per job and statements per job, against a baseline measured in the
same run: plain `sqlite3` writing the rows a job changes (lease it, finish it, move its record,
queue the next), one transaction per job.

Usage: python bench/engine_jobs.py [--hosts 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixing.engine_harness import TIMINGS, Harness  # noqa: E402

from vulfix.fixing.agent_port import JobResult  # noqa: E402
from vulfix.fixing.clock import ManualClock  # noqa: E402
from vulfix.store.database import create_engine, write_transaction  # noqa: E402
from vulfix.store.fix_task_reader import SqlTaskReader  # noqa: E402
from vulfix.store.fixing_store import SqlFixingStore  # noqa: E402
from vulfix.store.migrate import upgrade  # noqa: E402
from vulfix.store.tables import accounts, to_stored  # noqa: E402

SUCCESS = JobResult("success", "", 0, "", "ref", 0.0)


@dataclass
class Prepared:
    """A SQLite file with a one-vulnerability task over `hosts`, and the engine on it."""

    engine: AsyncEngine
    store: SqlFixingStore
    clock: ManualClock
    harness: Harness
    names: list[str]


async def prepare(path: Path, hosts: int) -> Prepared:
    db = f"sqlite:///{path}"
    upgrade(db)
    engine = create_engine(db)
    clock = ManualClock()
    store = SqlFixingStore(engine, TIMINGS, lambda _hosts: None)
    async with write_transaction(engine) as conn:
        account = await conn.execute(
            accounts.insert().values(name="bench", app_id=1, created_at=to_stored(clock.now()))
        )
        assert account.inserted_primary_key is not None
        account_id = int(account.inserted_primary_key[0])
    harness = Harness(store, SqlTaskReader(engine), clock, account_id)
    names = [f"q-{n}" for n in range(hosts)]
    for name in names:
        await harness.add_host(name)
    await harness.add_vulnerability(1, on=names)
    await harness.create([(1, names)])
    return Prepared(engine, store, clock, harness, names)


async def run_host(prepared: Prepared, name: str) -> None:
    """A host's jobs as the agent API drives them: the poll woken for its first job, as after
    a CreateVulFix, then reports that take the next job."""
    store, clock = prepared.store, prepared.clock
    host = prepared.harness.hosts[name]
    job = await store.next_job(host, clock.now(), woken=True)
    while job is not None:
        _ack, job = await store.report_and_take_next(host, job.job_id, SUCCESS, clock.now())


async def run_hosts_at_once(prepared: Prepared, names: list[str], agents: int) -> None:
    """`names`' hosts through their jobs, `agents` of them at a time, so that their
    operations share transactions as they do under `vulfix serve`."""
    waiting = list(names)

    async def agent() -> None:
        while waiting:
            await run_host(prepared, waiting.pop())

    await asyncio.gather(*(agent() for _ in range(agents)))


async def shared_cpu_per_job(prepared: Prepared, agents: int) -> float:
    """CPU seconds per job of every prepared host through its jobs, `agents` at a time
    (`run_hosts_at_once`); the engine is disposed of after."""
    began = time.process_time()
    await run_hosts_at_once(prepared, prepared.names, agents)
    cpu = time.process_time() - began
    await prepared.engine.dispose()
    return cpu / (2 * len(prepared.names))


async def engine_run(path: Path, hosts: int, *, traced: bool) -> tuple[float, float]:
    """(CPU seconds per job, SQL statements per job, BEGIN and COMMIT included) of the
    engine's agent port."""
    prepared = await prepare(path, hosts)
    engine = prepared.engine
    statements = 0

    def count(_sql: str) -> None:
        nonlocal statements
        statements += 1

    if traced:  # a run of its own: the trace costs CPU
        await engine.dispose()  # the next connection traces every statement SQLite runs

        @event.listens_for(engine.sync_engine, "connect")
        def trace(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection._connection._live().set_trace_callback(count)

    began = time.process_time()
    for name in prepared.names:
        await run_host(prepared, name)
    cpu = time.process_time() - began
    await engine.dispose()
    return cpu / (2 * hosts), statements / (2 * hosts)


def baseline_run(path: Path, hosts: int) -> float:
    """CPU seconds per job of plain sqlite3 writing a job's rows, a transaction each."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, host INT, state TEXT, at TEXT)")
    db.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, host INT, status INT, at TEXT)")
    each_host = [(h,) for h in range(hosts)]
    db.executemany("INSERT INTO records (host, status) VALUES (?, 0)", each_host)
    db.executemany("INSERT INTO jobs (host, state) VALUES (?, 'queued')", each_host)
    stamp = "2026-12-05 00:00:00"
    began = time.process_time()
    for job in range(1, 2 * hosts + 1):
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE jobs SET state = 'leased', at = ? WHERE id = ?", (stamp, job))
        db.execute("UPDATE jobs SET state = 'done', at = ? WHERE id = ?", (stamp, job))
        db.execute("UPDATE records SET status = 1, at = ? WHERE id = ?", (stamp, job // 2 + 1))
        db.execute("INSERT INTO jobs (host, state) VALUES (?, 'queued')", (job,))
        db.execute("COMMIT")
    cpu = time.process_time() - began
    db.close()
    return cpu / (2 * hosts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cpu, _ = asyncio.run(engine_run(Path(tmp) / "engine.db", args.hosts, traced=False))
        _, statements = asyncio.run(engine_run(Path(tmp) / "traced.db", 100, traced=True))
        floor = baseline_run(Path(tmp) / "floor.db", args.hosts)
    print(f"engine: {cpu * 1e6:.0f} us CPU and {statements:.1f} SQL statements per job")
    print(f"plain sqlite3, a job's rows in a transaction: {floor * 1e6:.0f} us per job")
    print(f"ratio {cpu / floor:.1f}")


if __name__ == "__main__":
    main()
