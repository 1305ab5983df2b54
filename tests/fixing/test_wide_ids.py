"""Ids past 2^31 on PostgreSQL: every id is 64-bit, and so is every column that holds one.

SQLite's INTEGER is 64-bit whatever the declared type, so only PostgreSQL can get this wrong.
"""

from __future__ import annotations

from sqlalchemy import func, select, text

from tests.fixing.engine_harness import make_harness
from vulfix.store.database import write_transaction
from vulfix.store.fixing_tables import fix_records, jobs, snapshot_records

PAST_32_BITS = 2**31 + 1000
# Every table whose id another table holds, and the sequence behind that id.
COUNTERS = {
    "hosts": "id",
    "fix_tasks": "fix_id",
    "fix_items": "id",
    "snapshot_records": "id",
    "fix_records": "id",
    "jobs": "job_id",
    "machine_snapshots": "id",
}


async def test_a_task_runs_to_the_end_with_every_id_past_32_bits(postgres_url: str) -> None:
    harness = await make_harness(postgres_url)
    try:
        async with write_transaction(harness.store.engine) as conn:
            for table, column in COUNTERS.items():
                await conn.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, :column), :value)"),
                    {"table": table, "column": column, "value": PAST_32_BITS},
                )
        quuids = ["wide-1", "wide-2"]
        for quuid in quuids:
            host = await harness.add_host(quuid)
            assert host.host_id > PAST_32_BITS
        await harness.add_vulnerability(7, on=quuids)
        fix_id = await harness.create([(7, quuids)])
        assert fix_id > PAST_32_BITS
        for quuid in quuids:
            assert await harness.drain(quuid) == 2  # its snapshot, then its fix
        status = await harness.status(fix_id=fix_id)
        assert (status.fix_progress, status.fix_success_cnt, status.fix_fail_cnt) == (100, 2, 0)
        async with write_transaction(harness.store.engine) as conn:
            for table in (jobs, snapshot_records, fix_records):
                smallest = (await conn.execute(select(func.min(table.c.fix_id)))).scalar_one()
                assert smallest == fix_id
    finally:
        await harness.store.engine.dispose()
