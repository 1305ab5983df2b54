"""Reads fix tasks for their status view (the engine's records join these tasks)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.fixing.task_status import TaskLookup
from vulfix.fixing.task_view import DurationEstimates, TaskView
from vulfix.store.database import read_transaction
from vulfix.store.tables import as_utc, fix_tasks


class SqlTaskReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def find_task(self, account_id: int, lookup: TaskLookup) -> TaskView | None:
        if lookup.fix_id is None:
            return None
        query = select(fix_tasks.c.fix_id, fix_tasks.c.created_at).where(
            fix_tasks.c.fix_id == lookup.fix_id, fix_tasks.c.account_id == account_id
        )
        async with read_transaction(self.engine) as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return TaskView(row.fix_id, as_utc(row.created_at), (), (), ())

    async def duration_estimates(self) -> DurationEstimates:
        return DurationEstimates()
