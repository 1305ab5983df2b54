"""DescribeCanFixVulMachine: for given vulnerabilities, the affected hosts and whether each can
be fixed automatically now (spec §2.5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from vulfix.cwp.error_codes import api_errors
from vulfix.cwp.quuids import check_quuids
from vulfix.cwp.wire_types import UInt, WireStruct
from vulfix.fixing.clock import Clock
from vulfix.inventory.can_fix import (
    DEFAULT_OFFLINE_AFTER,
    FindingReader,
    HostFixability,
    VulnerabilityFixability,
    fixable_hosts,
)
from vulfix.tcapi import Caller, api_error


class DescribeCanFixVulMachineRequest(WireStruct):
    vul_ids: list[UInt]
    quuids: list[str] | None = None


class VulInfoHostInfo(WireStruct):
    host_name: str
    host_ip: str
    tags: list[str]
    quuid: str
    is_support_auto_fix: int
    uuid: str
    instance_id: str
    machine_type: str
    agent_status: int


class CanFixVulInfo(WireStruct):
    vul_id: int
    vul_name: str
    host_list: list[VulInfoHostInfo]
    fix_tag: list[str]
    vul_category: int


class DescribeCanFixVulMachineResponse(WireStruct):
    vul_info: list[CanFixVulInfo]


def _host_info(entry: HostFixability) -> VulInfoHostInfo:
    host = entry.host
    return VulInfoHostInfo(
        host_name=host.host_name,
        host_ip=host.host_ip,
        tags=list(host.tags),
        quuid=host.quuid,
        is_support_auto_fix=entry.is_support_auto_fix,
        uuid=host.uuid,
        instance_id=host.instance_id,
        machine_type=host.machine_type,
        agent_status=int(entry.agent_online),
    )


def _vul_info(entry: VulnerabilityFixability) -> CanFixVulInfo:
    vul = entry.vulnerability
    return CanFixVulInfo(
        vul_id=vul.vul_id,
        vul_name=vul.vul_name,
        host_list=[_host_info(host) for host in entry.hosts],
        fix_tag=list(vul.fix_tag),
        vul_category=vul.vul_category,
    )


class FreezeReader(Protocol):
    async def is_frozen(self, account_id: int) -> bool: ...


class CanFixVulMachineAction:
    """`offline_after`: seconds since an agent was last seen after which it counts as offline.
    During an account's change freeze the answer is OperationDenied: nothing may be fixed."""

    def __init__(
        self,
        reader: FindingReader,
        clock: Clock,
        offline_after: float = DEFAULT_OFFLINE_AFTER.total_seconds(),
        freezes: FreezeReader | None = None,
    ) -> None:
        self.reader = reader
        self.clock = clock
        self.offline_after = timedelta(seconds=offline_after)
        self.freezes = freezes

    async def __call__(
        self, req: DescribeCanFixVulMachineRequest, caller: Caller
    ) -> DescribeCanFixVulMachineResponse:
        if req.quuids:
            # This action documents InvalidParameter, not its InvalidFormat sub-code.
            check_quuids(req.quuids, "Quuids", format_code="InvalidParameter")
        async with api_errors():
            if self.freezes is not None and await self.freezes.is_frozen(caller.account_id):
                raise api_error(
                    "OperationDenied",
                    "Changes are frozen for this account: no host may be fixed until it ends.",
                    "该账号处于变更冻结期：冻结结束前不能修复主机。",
                )
            found = await fixable_hosts(
                self.reader,
                caller.account_id,
                req.vul_ids,
                req.quuids,
                self.clock.now(),
                self.offline_after,
            )
        return DescribeCanFixVulMachineResponse(vul_info=[_vul_info(entry) for entry in found])
