"""DescribeVulFixStatus: the progress of one fix task, as the API documents it."""

from __future__ import annotations

import msgspec

from vulfix.cwp.wire_types import Quuid, StoredId, WireStruct


class DescribeVulFixStatusRequest(WireStruct):
    fix_id: StoredId | None = None
    vul_id: StoredId | None = None
    quuid: Quuid | None = None
    kb_id: StoredId | None = None


class VulFixStatusSnapshotInfo(WireStruct):
    quuid: str
    host_name: str
    host_ip: str
    snapshot_name: str
    modify_time: str
    snapshot_id: str
    id: int
    status: int
    fail_reason: str
    machine_type: str


class VulFixStatusHostInfo(WireStruct):
    host_name: str
    host_ip: str
    quuid: str
    status: int
    modify_time: str
    fail_reason: str


class VulFixStatusInfo(WireStruct):
    vul_id: int
    vul_name: str
    progress: int
    host_list: list[VulFixStatusHostInfo]
    fail_cnt: int
    fix_success_cnt: int
    fix_method: int
    kb_id: int
    kb_number: str
    kb_name: str
    pre_kb_list: list[str]


class DescribeVulFixStatusResponse(WireStruct):
    fix_start_time: str
    fix_end_time: str
    fix_success_cnt: int
    fix_fail_cnt: int
    host_cnt: int
    fix_id: int
    snapshot_list: list[VulFixStatusSnapshotInfo] = msgspec.field(default_factory=list)
    vul_fix_list: list[VulFixStatusInfo] = msgspec.field(default_factory=list)
    snapshot_progress: int = 0
    fix_progress: int = 0
    is_retry_snapshot: int = 0
    snapshot_fail_cnt: int = 0
    # Last, in this order: the cache of encoded answers works these two out for each call.
    remaining_time: int = 0
    is_allow_retry: int = 0
