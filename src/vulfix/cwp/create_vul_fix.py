"""CreateVulFix: submit a fix task (snapshots first when SaveDays > 0); returns FixId.

Extensions, absent from the cloud API and cloud-identical when omitted: `MaxConcurrency`
and `MaxErrors`, each a number of hosts or a percentage (see `vulfix.fixing.budgets`).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from vulfix.cwp.error_codes import api_errors
from vulfix.cwp.quuids import check_quuids
from vulfix.cwp.wire_types import StoredId, WireStruct
from vulfix.fixing.clock import Clock
from vulfix.fixing.planning import FixItemRequest, FixRequest
from vulfix.fixing.services import TaskCreationStore, create_fix_task
from vulfix.tcapi import Caller

SaveDays = Annotated[int, msgspec.Meta(ge=0, le=365)]
FixMethod = Annotated[int, msgspec.Meta(ge=0, le=1)]
Budget = Annotated[str, msgspec.Meta(max_length=16)]


class CreateVulFixTaskQuuids(WireStruct):
    quuids: list[str]
    vul_id: StoredId | None = None
    fix_method: FixMethod | None = None
    kb_id: StoredId | None = None


class CreateVulFixRequest(WireStruct):
    create_vul_fix_task_quuids: list[CreateVulFixTaskQuuids]
    save_days: SaveDays
    snapshot_name: Annotated[str, msgspec.Meta(max_length=255)] | None = None
    max_concurrency: Budget | None = None
    max_errors: Budget | None = None


class CreateVulFixResponse(WireStruct):
    fix_id: int


class CreateVulFixAction:
    def __init__(self, store: TaskCreationStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def __call__(self, req: CreateVulFixRequest, caller: Caller) -> CreateVulFixResponse:
        for index, entry in enumerate(req.create_vul_fix_task_quuids):
            check_quuids(entry.quuids, f"CreateVulFixTaskQuuids.{index}.Quuids")
        request = FixRequest(
            items=tuple(
                FixItemRequest(e.vul_id or 0, e.kb_id or 0, e.fix_method or 0, tuple(e.quuids))
                for e in req.create_vul_fix_task_quuids
            ),
            save_days=req.save_days,
            snapshot_name=req.snapshot_name or "",
            max_concurrency=req.max_concurrency or "",
            max_errors=req.max_errors or "",
        )
        async with api_errors():
            fix_id = await create_fix_task(
                self.store, caller.account_id, request, self.clock.now(), caller.language
            )
        return CreateVulFixResponse(fix_id=fix_id)
