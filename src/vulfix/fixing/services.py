"""Use cases over the engine's storage: the same functions serve the API, console and CLI."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from vulfix.fixing.planning import FixRequest, HostFact, Planner, TaskPlan, VulFact, plan_task


class TaskCreationStore(Protocol):
    async def create_task(
        self, account_id: int, request: FixRequest, planner: Planner, now: datetime
    ) -> int: ...


async def create_fix_task(
    store: TaskCreationStore,
    account_id: int,
    request: FixRequest,
    now: datetime,
    language: str = "zh-CN",
) -> int:
    """Plans the task against the inventory (all or nothing) and creates it; returns FixId.
    The task and all its records are readable as soon as this returns."""

    def planner(
        hosts: Mapping[str, HostFact],
        vulnerabilities: Mapping[int, VulFact],
        states: Mapping[tuple[int, int], int],
    ) -> TaskPlan:
        return plan_task(request, hosts, vulnerabilities, states, language)

    return await store.create_task(account_id, request, planner, now)
