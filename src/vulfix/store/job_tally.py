"""Jobs by kind, state and outcome for `/metrics`, counted by reading only what may change.

Jobs are never deleted, so a count of every job ever run grows with the queue's history: at
0.35 us a job on SQLite, a fleet running a task a day would within months hold the event
loop for seconds at each refresh. A finished job never changes again (queued -> leased ->
done | expired | cancelled), so `JobTally` counts it once: a refresh reads the jobs added
since the last one, the jobs that were unfinished then, and the most recent jobs.

Jobs are taken in id order. PostgreSQL takes a job's id when the row is inserted and shows
the row when its transaction commits, so a row can appear after rows with higher ids: there,
jobs younger than `SETTLE` are read afresh at every refresh and only older ones are counted
for good. SQLite's one writer commits its ids in order.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, not_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from vulfix.store.bounded_in import chunks
from vulfix.store.fixing_tables import JOB_ACTIVE, jobs
from vulfix.store.row_locks import is_serialised
from vulfix.store.tables import to_stored

# Longer than any transaction that inserts jobs stays open (a CreateVulFix over a large
# fleet, a sweep's batch), and than replicas' clocks (which stamp `created_at`) drift apart.
SETTLE = timedelta(minutes=1)
# Job ids read at once: about 70 ms of SQLite's time (0.35 us a job), for the first count of a
# long history, which the event loop would otherwise wait on whole.
SPAN = 200_000

Key = tuple[str, str, str]  # kind, state, outcome
JobCount = tuple[str, str, str, int]

_KEY = (jobs.c.kind, jobs.c.state, jobs.c.outcome)
_FINISHED = not_(JOB_ACTIVE)
_LAST_ID = select(func.max(jobs.c.job_id))
_LAST_SETTLED = select(func.max(jobs.c.job_id)).where(
    jobs.c.job_id > bindparam("after"), jobs.c.created_at < bindparam("since")
)
# Unfinished jobs are few (one per host at most) and indexed apart (`uq_jobs_active_host`).
_UNFINISHED = select(jobs.c.job_id, *_KEY).where(JOB_ACTIVE)
_FINISHED_IN_SPAN = (
    select(*_KEY, func.count())
    .where(jobs.c.job_id > bindparam("after"), jobs.c.job_id <= bindparam("upto"), _FINISHED)
    .group_by(*_KEY)
)
_FINISHED_AFTER = (
    select(*_KEY, func.count()).where(jobs.c.job_id > bindparam("after"), _FINISHED).group_by(*_KEY)
)


class JobTally:
    """One process's running count. Every refresh answers from the database as it stands
    (one read transaction), so replicas agree; only the reading is saved."""

    def __init__(self) -> None:
        # Every job up to this id is counted in `_finished`, or is one of `_unfinished`.
        self._counted_to = 0
        self._finished: Counter[Key] = Counter()
        self._unfinished: frozenset[int] = frozenset()

    async def counts(self, conn: AsyncConnection, now: datetime) -> list[JobCount]:
        """Jobs by (kind, state, outcome) in `conn`'s snapshot. What is learnt is kept only
        once every read has succeeded."""
        counted_to = await self._settled_to(conn, now)
        finished = self._finished.copy()
        for after in range(self._counted_to, counted_to, SPAN):
            span = {"after": after, "upto": min(after + SPAN, counted_to)}
            _add(finished, await conn.execute(_FINISHED_IN_SPAN, span))
            await asyncio.sleep(0)  # a long history's first count lets requests through
        recent: Counter[Key] = Counter()
        unfinished = set()
        for job_id, kind, state, outcome in await conn.execute(_UNFINISHED):
            recent[(kind, state, outcome)] += 1
            unfinished.add(int(job_id))
        lately = sorted(self._unfinished - unfinished)  # unfinished then, finished now
        for chunk in chunks(lately):
            query = select(*_KEY, func.count()).where(jobs.c.job_id.in_(chunk)).group_by(*_KEY)
            _add(finished, await conn.execute(query))
        _add(recent, await conn.execute(_FINISHED_AFTER, {"after": counted_to}))
        self._finished = finished
        self._unfinished = frozenset(i for i in unfinished if i <= counted_to)
        self._counted_to = counted_to
        return [(*key, count) for key, count in sorted((finished + recent).items())]

    async def _settled_to(self, conn: AsyncConnection, now: datetime) -> int:
        """The highest id below which no job can still appear. Where one writer commits at a
        time, the last id; on PostgreSQL, that of the newest job older than `SETTLE`: a job
        not yet shown took its id after that one's (ids are taken in time order), as its
        transaction is younger than `SETTLE`."""
        if is_serialised(conn):
            last = await conn.scalar(_LAST_ID)
        else:
            since = to_stored(now - SETTLE)
            last = await conn.scalar(_LAST_SETTLED, {"after": self._counted_to, "since": since})
        return max(self._counted_to, int(last or 0))


def _add(counts: Counter[Key], rows: Iterable[Any]) -> None:
    for kind, state, outcome, count in rows:
        counts[(kind, state, outcome)] += int(count)
