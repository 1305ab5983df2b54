"""The engine finds jobs through an index, never by reading every job ever run.

Finished jobs pile up without bound, and the partial indexes hold only the jobs in the state
a query looks for; SQLite uses one only where the query repeats its condition, and may prefer
to scan the table in id order. Every statement the engine runs against `jobs` through a task's
life (queueing, claims, reports, sweeps, a cancel, the observed durations, the job figures of
`/metrics`) is traced on the driver and its plan read back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import event

from tests.fixing.engine_harness import TIMINGS, Harness, make_harness
from vulfix.fixing.agent_port import JobResult, SnapshotDeleteWork
from vulfix.store.migrate import upgrade


def _trace_statements(harness: Harness, traced: list[str]) -> None:
    """Every statement run on the engine's connections from now on, values inlined."""

    def traced_connection(dbapi_connection: object, _record: object) -> None:
        driver = dbapi_connection._connection._live()  # type: ignore[attr-defined]
        driver.set_trace_callback(traced.append)

    event.listen(harness.store.engine.sync_engine, "connect", traced_connection)


async def test_no_statement_of_the_engine_scans_the_jobs(tmp_path: Path) -> None:
    path = tmp_path / "vulfix.db"
    upgrade(f"sqlite:///{path}")
    harness = await make_harness(f"sqlite:///{path}")
    await harness.store.engine.dispose()  # connections opened from here on are traced
    traced: list[str] = []
    _trace_statements(harness, traced)
    try:
        for n in range(4):
            await harness.add_host(f"h{n}")
        await harness.add_vulnerability(7, on=[f"h{n}" for n in range(4)])
        await harness.add_vulnerability(8, on=["h0"])
        fix_id = await harness.create([(7, ["h0", "h1", "h2", "h3"])])
        assert await harness.drain("h0") == 2
        second = await harness.create([(8, ["h0"])])
        success = JobResult("success", "", 0, "", "ref", 1)
        snapshot = await harness.poll("h1")
        assert snapshot is not None
        await harness.store.report_and_take_next(
            harness.hosts["h1"], snapshot.job_id, success, harness.clock.now()
        )
        await harness.status(fix_id=fix_id)  # RemainingTime: the observed durations
        harness.clock.advance(TIMINGS.lease_seconds + TIMINGS.dispatch_timeout + 1)
        figures = await harness.store.sweep(harness.clock.now())
        assert figures.leases_expired == 1 and figures.dispatch_timeouts >= 2
        await harness.store.cancel(harness.account_id, second, harness.clock.now())
        for _refresh in range(2):  # the job figures on /metrics: a first count, then the rest
            assert await harness.store.job_counts(harness.clock.now())
    finally:
        await harness.store.engine.dispose()

    on_jobs = {sql for sql in traced if " jobs" in sql and not sql.startswith("INSERT")}
    assert len(on_jobs) >= 8, "the trace caught the engine's statements"
    for sql, plan in _plans(path, on_jobs):
        assert not any(_reads_every_job(step) for step in plan), (sql, plan)


def _plans(path: Path, statements: set[str]) -> list[tuple[str, list[str]]]:
    """Each statement with the steps of its query plan in the database at `path`."""
    with sqlite3.connect(path) as db:
        return [
            (sql, [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")])
            for sql in sorted(statements)
        ]


# Partial indexes that hold unfinished jobs only: at most one a host, however long the history.
UNFINISHED_ONLY = ("uq_jobs_active_host", "ix_jobs_leased_expiry", "ix_jobs_queued_since")


def _reads_every_job(step: str) -> bool:
    if not step.startswith("SCAN jobs"):
        return False
    return not any(step.endswith(f"INDEX {index}") for index in UNFINISHED_ONLY)


async def test_the_retention_sweep_seeks_expired_snapshots_through_an_index(
    tmp_path: Path,
) -> None:
    """Kept snapshots pile up with retention (a fleet's worth a task): the sweep that runs
    every second must not read them all to find the few past their time."""
    path = tmp_path / "vulfix.db"
    upgrade(f"sqlite:///{path}")
    harness = await make_harness(f"sqlite:///{path}")
    try:
        for n in range(3):
            await harness.add_host(f"h{n}")
        await harness.add_vulnerability(7, on=["h0", "h1", "h2"])
        await harness.create([(7, ["h0", "h1", "h2"])], save_days=1)
        for n in range(3):
            assert await harness.drain(f"h{n}") == 2
        await harness.store.engine.dispose()  # connections opened from here on are traced
        traced: list[str] = []
        _trace_statements(harness, traced)
        harness.clock.advance(86_400 + 1)
        await harness.store.sweep(harness.clock.now())
        delete = await harness.poll("h0")
        assert delete is not None and isinstance(delete.work, SnapshotDeleteWork)
    finally:
        await harness.store.engine.dispose()

    on_snapshots = {sql for sql in traced if "FROM machine_snapshots" in sql}
    assert any("DISTINCT" in sql for sql in on_snapshots), "the trace caught the sweep"
    for sql, plan in _plans(path, on_snapshots):
        assert not any(step.startswith("SCAN machine_snapshots") for step in plan), (sql, plan)
