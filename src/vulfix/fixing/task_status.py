"""Finding a task by the lookup rules of DESIGN §2 and computing its figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from vulfix.fixing.errors import LookupIncomplete, TaskNotFound
from vulfix.fixing.task_view import DurationEstimates, TaskFigures, TaskView, figures


@dataclass(frozen=True, slots=True)
class TaskLookup:
    fix_id: int | None = None
    vul_id: int | None = None
    quuid: str | None = None
    kb_id: int | None = None


class TaskReader(Protocol):
    async def find_task(self, account_id: int, lookup: TaskLookup) -> TaskView | None:
        """FixId -> that task; else VulId (+ Quuid) -> the newest task containing it."""
        ...

    async def version(self, account_id: int, lookup: TaskLookup) -> tuple[int, int] | None:
        """(FixId, version) of the task the lookup selects; the version changes with any record."""
        ...

    async def duration_estimates(self, account_id: int) -> DurationEstimates: ...


def check_lookup(lookup: TaskLookup) -> None:
    if lookup.fix_id is None and lookup.vul_id is None:
        raise LookupIncomplete(
            "Give FixId, or VulId (optionally with Quuid), to find a fix task.",
            "请提供 FixId，或 VulId（可附带 Quuid）以查询修复任务。",
        )


def not_found(lookup: TaskLookup) -> TaskNotFound:
    return TaskNotFound(*_not_found_messages(lookup))


async def task_status(
    reader: TaskReader,
    account_id: int,
    lookup: TaskLookup,
    now: datetime,
    estimates: DurationEstimates | None = None,
) -> TaskFigures:
    """The task's figures at `now`; the account's duration estimates are read unless given."""
    check_lookup(lookup)
    view = await reader.find_task(account_id, lookup)
    if view is None:
        raise not_found(lookup)
    narrowed = view.narrowed(vul_id=lookup.vul_id, kb_id=lookup.kb_id, quuid=lookup.quuid)
    if view.fix_records and not narrowed.fix_records:
        raise TaskNotFound(
            f"Fix task {view.fix_id} has nothing matching those filters.",
            f"修复任务 {view.fix_id} 中没有符合条件的记录。",
        )
    if estimates is None:
        estimates = await reader.duration_estimates(account_id)
    return figures(narrowed, now, estimates)


def _not_found_messages(lookup: TaskLookup) -> tuple[str, str]:
    if lookup.fix_id is not None:
        return f"No fix task with FixId {lookup.fix_id}.", f"修复任务 {lookup.fix_id} 不存在。"
    if lookup.quuid is not None:
        return (
            f"No fix task for VulId {lookup.vul_id} on host {lookup.quuid}.",
            f"主机 {lookup.quuid} 上没有漏洞 {lookup.vul_id} 的修复任务。",
        )
    return (
        f"No fix task contains VulId {lookup.vul_id}.",
        f"没有包含漏洞 {lookup.vul_id} 的修复任务。",
    )
