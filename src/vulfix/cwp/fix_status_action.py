"""The DescribeVulFixStatus handler: typed request in, one service call, typed response out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vulfix.cwp.display_time import DisplayClock
from vulfix.cwp.error_codes import api_errors
from vulfix.cwp.fix_status import (
    DescribeVulFixStatusRequest,
    DescribeVulFixStatusResponse,
    VulFixStatusHostInfo,
    VulFixStatusInfo,
    VulFixStatusSnapshotInfo,
)
from vulfix.fixing.task_status import TaskLookup, TaskReader, task_status
from vulfix.fixing.task_view import TaskFigures
from vulfix.tcapi import Caller


class FixStatusAction:
    def __init__(
        self, reader: TaskReader, display: DisplayClock, now: Callable[[], datetime]
    ) -> None:
        self.reader = reader
        self.display = display
        self.now = now

    async def __call__(
        self, req: DescribeVulFixStatusRequest, caller: Caller
    ) -> DescribeVulFixStatusResponse:
        lookup = TaskLookup(fix_id=req.fix_id, vul_id=req.vul_id, quuid=req.quuid, kb_id=req.kb_id)
        async with api_errors():
            status = await task_status(self.reader, caller.account_id, lookup, self.now())
        return self.render(status)

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
