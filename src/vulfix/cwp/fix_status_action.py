"""The DescribeVulFixStatus handler: typed request in, one service call, typed response out."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import msgspec

from vulfix.cwp.display_time import DisplayClock
from vulfix.cwp.error_codes import api_errors
from vulfix.cwp.fix_status import (
    DescribeVulFixStatusRequest,
    DescribeVulFixStatusResponse,
    VulFixStatusHostInfo,
    VulFixStatusInfo,
    VulFixStatusSnapshotInfo,
)
from vulfix.cwp.quuids import check_quuid
from vulfix.fixing.clock import Clock
from vulfix.fixing.task_status import TaskLookup, TaskReader, check_lookup, not_found, task_status
from vulfix.fixing.task_view import TaskFigures, retry_window_closes_at
from vulfix.tcapi import Caller, api_error

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class _Answer:
    version: tuple[int, int]
    # Figures that move with time alone expire the answer: a running task's RemainingTime
    # (recomputed every `running_ttl`), a finished one's IsAllowRetry (when the retry window
    # of its newest failure closes). None: valid until the version changes.
    valid_until: datetime | None
    body: bytes


class FixStatusAction:
    """Answers from a cache of encoded bodies keyed by the lookup and valid while the task's
    (FixId, version) is unchanged. The version is bumped in the same transaction as every
    record change, so a replica never answers from a cache older than the database, whichever
    replica made the change. Bounded by total bytes."""

    def __init__(
        self,
        reader: TaskReader,
        display: DisplayClock,
        clock: Clock,
        running_ttl: float = 1.0,
        cache_bytes: int = 128 * 1024 * 1024,
    ) -> None:
        self.reader = reader
        self.display = display
        self.clock = clock
        self.running_ttl = timedelta(seconds=running_ttl)
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[tuple[int, TaskLookup], _Answer] = OrderedDict()
        self._cached_bytes = 0

    async def __call__(self, req: DescribeVulFixStatusRequest, caller: Caller) -> msgspec.Raw:
        check_quuid(req.quuid, "Quuid")
        if (
            req.fix_id is None
            and req.vul_id is None
            and (req.quuid is not None or req.kb_id is not None)
        ):
            raise api_error(
                "InvalidParameter.MissingParameter",
                "Quuid and KbId narrow a lookup by FixId or VulId: give VulId (or FixId) too.",
                "Quuid 和 KbId 只能配合 FixId 或 VulId 使用，请同时提供 VulId（或 FixId）。",
            )
        lookup = TaskLookup(fix_id=req.fix_id, vul_id=req.vul_id, quuid=req.quuid, kb_id=req.kb_id)
        key = (caller.account_id, lookup)
        async with api_errors():
            check_lookup(lookup)
            version = await self.reader.version(caller.account_id, lookup)
            if version is None:
                raise not_found(lookup)
            now = self.clock.now()
            cached = self._cache.get(key)
            if (
                cached
                and cached.version == version
                and (cached.valid_until is None or now < cached.valid_until)
            ):
                self._cache.move_to_end(key)
                return msgspec.Raw(cached.body)
            # The task is found: read it by FixId rather than resolving the lookup again.
            resolved = replace(lookup, fix_id=version[0])
            status = await task_status(self.reader, caller.account_id, resolved, now)
        body = _encoder.encode(self.render(status))
        self._remember(key, _Answer(version, self._valid_until(status, now), body))
        return msgspec.Raw(body)

    def _valid_until(self, status: TaskFigures, now: datetime) -> datetime | None:
        if status.ended_at is None:
            return now + self.running_ttl
        return retry_window_closes_at(status.view) if status.is_allow_retry else None

    def _remember(self, key: tuple[int, TaskLookup], answer: _Answer) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_bytes -= len(old.body)
        self._cache[key] = answer
        self._cached_bytes += len(answer.body)
        while self._cached_bytes > self.cache_bytes and self._cache:
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= len(evicted.body)

    def render(self, status: TaskFigures) -> DescribeVulFixStatusResponse:
        show = self.display.show
        return DescribeVulFixStatusResponse(
            fix_start_time=show(status.view.created_at),
            fix_end_time=show(status.ended_at),
            fix_success_cnt=status.fix_success_cnt,
            fix_fail_cnt=status.fix_fail_cnt,
            host_cnt=status.host_cnt,
            fix_id=status.view.fix_id,
            snapshot_list=[
                VulFixStatusSnapshotInfo(
                    quuid=s.host.quuid,
                    host_name=s.host.host_name,
                    host_ip=s.host.host_ip,
                    snapshot_name=s.snapshot_name,
                    modify_time=show(s.modified_at),
                    snapshot_id=s.snapshot_id,
                    id=s.id,
                    status=int(s.status),
                    fail_reason=s.fail_reason,
                    machine_type=s.host.machine_type,
                )
                for s in status.view.snapshot_records
            ],
            vul_fix_list=[
                VulFixStatusInfo(
                    vul_id=item.item.vul_id,
                    vul_name=item.item.vul_name,
                    progress=item.progress,
                    host_list=[
                        VulFixStatusHostInfo(
                            host_name=r.host.host_name,
                            host_ip=r.host.host_ip,
                            quuid=r.host.quuid,
                            status=int(r.status),
                            modify_time=show(r.modified_at),
                            fail_reason=r.fail_reason,
                        )
                        for r in item.records
                    ],
                    fail_cnt=item.fail_cnt,
                    fix_success_cnt=item.fix_success_cnt,
                    fix_method=item.item.fix_method,
                    kb_id=item.item.kb_id,
                    kb_number=item.item.kb_number,
                    kb_name=item.item.kb_name,
                    pre_kb_list=list(item.item.pre_kb_list),
                )
                for item in status.items
            ],
            snapshot_progress=status.snapshot_progress,
            fix_progress=status.fix_progress,
            remaining_time=status.remaining_seconds,
            is_retry_snapshot=int(status.is_retry_snapshot),
            snapshot_fail_cnt=status.snapshot_fail_cnt,
            is_allow_retry=int(status.is_allow_retry),
        )
