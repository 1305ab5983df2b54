"""Extensions beyond the cloud API, reachable with the official SDK's CommonClient:
`CancelVulFix(FixId)` and `DescribeVulFixHostLog(FixId, Quuid, VulId)`."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from vulfix.cwp.display_time import DisplayClock
from vulfix.cwp.error_codes import api_errors
from vulfix.cwp.quuids import check_quuid
from vulfix.cwp.retries import Empty
from vulfix.cwp.wire_types import StoredId, WireStruct
from vulfix.fixing.clock import Clock
from vulfix.fixing.host_log import HostLog
from vulfix.tcapi import Caller


class TaskControlStore(Protocol):
    async def cancel(self, account_id: int, fix_id: int, now: datetime) -> None: ...

    async def host_log(self, account_id: int, fix_id: int, quuid: str, vul_id: int) -> HostLog: ...


class CancelVulFixRequest(WireStruct):
    fix_id: StoredId


class DescribeVulFixHostLogRequest(WireStruct):
    fix_id: StoredId
    quuid: str
    vul_id: StoredId


class DescribeVulFixHostLogResponse(WireStruct):
    status: int
    # -1 while the fix has not run (or ran without an exit code, e.g. a lost agent).
    exit_code: int
    output: str
    fail_reason: str
    modify_time: str


class CancelVulFixAction:
    def __init__(self, store: TaskControlStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def __call__(self, req: CancelVulFixRequest, caller: Caller) -> Empty:
        async with api_errors():
            await self.store.cancel(caller.account_id, req.fix_id, self.clock.now())
        return Empty()


class DescribeVulFixHostLogAction:
    def __init__(self, store: TaskControlStore, display: DisplayClock) -> None:
        self.store = store
        self.display = display

    async def __call__(
        self, req: DescribeVulFixHostLogRequest, caller: Caller
    ) -> DescribeVulFixHostLogResponse:
        check_quuid(req.quuid, "Quuid")
        async with api_errors():
            log = await self.store.host_log(caller.account_id, req.fix_id, req.quuid, req.vul_id)
        return DescribeVulFixHostLogResponse(
            status=log.status,
            exit_code=-1 if log.exit_code is None else log.exit_code,
            output=log.output_tail,
            fail_reason=log.fail_reason,
            modify_time=self.display.show(log.modified_at),
        )
