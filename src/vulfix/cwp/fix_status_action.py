"""The DescribeVulFixStatus handler: typed request in, one service call, typed response out."""

from __future__ import annotations

import asyncio
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
from vulfix.fixing.task_view import DurationEstimates, RemainingWork, TaskFigures, retry_open
from vulfix.tcapi import Caller, api_error

_encoder = msgspec.json.Encoder()
_ESTIMATES_KEPT = 10_000  # accounts whose duration estimates are remembered
_Key = tuple[int, TaskLookup]  # (account, lookup)


@dataclass(frozen=True, slots=True)
class _Answer:
    """An encoded answer without its two fields that move with time alone, and what works
    them out at any moment: RemainingTime (while the task runs) and IsAllowRetry (until the
    retry window of its newest failure closes)."""

    version: tuple[int, int]
    head: bytes  # the encoded answer, cut before `,"RemainingTime":`
    running: RemainingWork | None  # None once the task has ended (RemainingTime 0)
    retry_closes_at: datetime | None

    def body(self, now: datetime, estimates: DurationEstimates) -> bytes:
        remaining = self.running.seconds(now, estimates) if self.running is not None else 0
        allow = retry_open(self.retry_closes_at, now)
        return self.head + b',"RemainingTime":%d,"IsAllowRetry":%d}' % (remaining, allow)


class FixStatusAction:
    """Answers from a cache of encoded answers keyed by the lookup and valid while the task's
    (FixId, version) is unchanged; the version is bumped in the same transaction as every
    record change, so a replica never answers from a cache older than the database, whichever
    replica made the change. The two fields that move with time alone are worked out for each
    call, the duration estimates behind RemainingTime re-read at most every `running_ttl`.
    Bounded by total bytes."""

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
        self._cache: OrderedDict[_Key, _Answer] = OrderedDict()
        self._cached_bytes = 0
        self._estimates: dict[int, tuple[datetime, DurationEstimates]] = {}
        self._building: dict[tuple[_Key, tuple[int, int]], asyncio.Future[_Answer]] = {}

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
        account_id = caller.account_id
        key = (account_id, lookup)
        async with api_errors():
            check_lookup(lookup)
            version = await self.reader.version(account_id, lookup)
            if version is None:
                raise not_found(lookup)
            now = self.clock.now()
            answer = self._cache.get(key)
            if answer is not None and answer.version == version:
                self._cache.move_to_end(key)
            else:
                answer = await self._built(key, version, now)
            running = answer.running is not None
            estimates = await self._estimates_of(account_id, now) if running else None
        return msgspec.Raw(answer.body(now, estimates or DurationEstimates()))

    async def _built(self, key: _Key, version: tuple[int, int], now: datetime) -> _Answer:
        """The answer for this version, built once however many callers ask meanwhile: a big
        task's answer takes a second to build, and each poller would otherwise build it again.
        The build is its own task, so a caller that goes away does not stop it for the rest."""
        building = self._building.get((key, version))
        if building is None:
            building = asyncio.ensure_future(self._build(key, version, now))
            self._building[(key, version)] = building
            building.add_done_callback(lambda done: self._finished((key, version), done))
        return await asyncio.shield(building)

    async def _build(self, key: _Key, version: tuple[int, int], now: datetime) -> _Answer:
        account_id, lookup = key
        # What moved the version (a job finishing) may have moved the estimates too.
        self._estimates.pop(account_id, None)
        estimates = await self._estimates_of(account_id, now)
        # The task is found: read it by FixId rather than resolving the lookup again.
        resolved = replace(lookup, fix_id=version[0])
        status = await task_status(self.reader, account_id, resolved, now, estimates)
        answer = self._answer(version, status)
        self._remember(key, answer)
        return answer

    def _finished(
        self, building: tuple[_Key, tuple[int, int]], done: asyncio.Future[_Answer]
    ) -> None:
        self._building.pop(building, None)
        if not done.cancelled():
            done.exception()  # every caller re-raises it; none may be left to look

    def _answer(self, version: tuple[int, int], status: TaskFigures) -> _Answer:
        encoded = _encoder.encode(self.render(status))
        head = encoded[: encoded.rindex(b',"RemainingTime":')]
        return _Answer(version, head, status.remaining, status.retry_closes_at)

    async def _estimates_of(self, account_id: int, now: datetime) -> DurationEstimates:
        """The account's mean job durations, read again once `running_ttl` old."""
        known = self._estimates.get(account_id)
        if known is not None and now < known[0] + self.running_ttl:
            return known[1]
        estimates = await self.reader.duration_estimates(account_id)
        if len(self._estimates) >= _ESTIMATES_KEPT:
            self._estimates.clear()
        self._estimates[account_id] = (now, estimates)
        return estimates

    def _remember(self, key: _Key, answer: _Answer) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_bytes -= len(old.head)
        self._cache[key] = answer
        self._cached_bytes += len(answer.head)
        while self._cached_bytes > self.cache_bytes and self._cache:
            _, evicted = self._cache.popitem(last=False)
            self._cached_bytes -= len(evicted.head)

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
            is_retry_snapshot=int(status.is_retry_snapshot),
            snapshot_fail_cnt=status.snapshot_fail_cnt,
            remaining_time=status.remaining_seconds,
            is_allow_retry=int(status.is_allow_retry),
        )
