"""RetryCreateSnapshot and RetryVulFix: put a failed record back in line (DESIGN §2)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from vulfix.cwp.error_codes import api_errors
from vulfix.cwp.quuids import check_quuid
from vulfix.cwp.wire_types import StoredId, WireStruct
from vulfix.fixing.clock import Clock
from vulfix.tcapi import Caller


class RetryStore(Protocol):
    async def retry_snapshot(
        self, account_id: int, fix_id: int, quuid: str, record_id: int, now: datetime
    ) -> None: ...

    async def retry_fix(
        self,
        account_id: int,
        fix_id: int,
        quuid: str,
        vul_id: int | None,
        kb_id: int | None,
        now: datetime,
    ) -> None: ...


class RetryCreateSnapshotRequest(WireStruct):
    fix_id: StoredId
    quuid: str
    id: StoredId


class RetryVulFixRequest(WireStruct):
    fix_id: StoredId
    quuid: str
    vul_id: StoredId | None = None
    kb_id: StoredId | None = None


class Empty(WireStruct):
    """An answer with nothing but its RequestId."""


class RetryCreateSnapshotAction:
    def __init__(self, store: RetryStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def __call__(self, req: RetryCreateSnapshotRequest, caller: Caller) -> Empty:
        check_quuid(req.quuid, "Quuid")
        async with api_errors():
            await self.store.retry_snapshot(
                caller.account_id, req.fix_id, req.quuid, req.id, self.clock.now()
            )
        return Empty()


class RetryVulFixAction:
    def __init__(self, store: RetryStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def __call__(self, req: RetryVulFixRequest, caller: Caller) -> Empty:
        # RetryVulFix documents no InvalidFormat code: a malformed Quuid is InvalidParameter.
        check_quuid(req.quuid, "Quuid", format_code="InvalidParameter")
        async with api_errors():
            await self.store.retry_fix(
                caller.account_id, req.fix_id, req.quuid, req.vul_id, req.kb_id, self.clock.now()
            )
        return Empty()
