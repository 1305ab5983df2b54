"""The CWP product: its name, version and the table of actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vulfix.cwp.can_fix_vul_machine import (
    CanFixVulMachineAction,
    DescribeCanFixVulMachineRequest,
    FreezeReader,
)
from vulfix.cwp.create_vul_fix import CreateVulFixAction, CreateVulFixRequest
from vulfix.cwp.display_time import DisplayClock
from vulfix.cwp.fix_status import DescribeVulFixStatusRequest
from vulfix.cwp.fix_status_action import FixStatusAction
from vulfix.cwp.machine_snapshot import DescribeMachineSnapshotRequest, MachineSnapshotAction
from vulfix.cwp.retries import (
    RetryCreateSnapshotAction,
    RetryCreateSnapshotRequest,
    RetryStore,
    RetryVulFixAction,
    RetryVulFixRequest,
)
from vulfix.cwp.task_extensions import (
    CancelVulFixAction,
    CancelVulFixRequest,
    DescribeVulFixHostLogAction,
    DescribeVulFixHostLogRequest,
    TaskControlStore,
)
from vulfix.fixing.clock import Clock
from vulfix.fixing.services import TaskCreationStore
from vulfix.fixing.task_status import TaskReader
from vulfix.inventory.can_fix import FindingReader
from vulfix.inventory.machine_snapshots import SnapshotReader
from vulfix.tcapi import ApiService

SERVICE_NAME = "cwp"
API_VERSION = "2018-02-28"


class FixingPorts(TaskCreationStore, RetryStore, TaskControlStore, Protocol):
    """Everything the fix actions ask of the engine's storage."""


class InventoryPorts(FindingReader, SnapshotReader, Protocol):
    """Everything the inventory actions ask of the store."""


@dataclass(frozen=True)
class CwpDependencies:
    tasks: TaskReader
    fixing: FixingPorts
    inventory: InventoryPorts
    display: DisplayClock
    clock: Clock
    offline_after: float
    freezes: FreezeReader


def build_cwp_service(deps: CwpDependencies) -> ApiService:
    service = ApiService(
        SERVICE_NAME, API_VERSION, parse_error_code="InvalidParameter.ParsingError"
    )
    fixing, clock, display = deps.fixing, deps.clock, deps.display
    add = service.add
    add(
        "DescribeVulFixStatus",
        DescribeVulFixStatusRequest,
        FixStatusAction(deps.tasks, display, clock),
        mutating=False,
    )
    add("CreateVulFix", CreateVulFixRequest, CreateVulFixAction(fixing, clock), mutating=True)
    add(
        "RetryCreateSnapshot",
        RetryCreateSnapshotRequest,
        RetryCreateSnapshotAction(fixing, clock),
        mutating=True,
    )
    add("RetryVulFix", RetryVulFixRequest, RetryVulFixAction(fixing, clock), mutating=True)
    add("CancelVulFix", CancelVulFixRequest, CancelVulFixAction(fixing, clock), mutating=True)
    add(
        "DescribeVulFixHostLog",
        DescribeVulFixHostLogRequest,
        DescribeVulFixHostLogAction(fixing, display),
        mutating=False,
    )
    add(
        "DescribeCanFixVulMachine",
        DescribeCanFixVulMachineRequest,
        CanFixVulMachineAction(deps.inventory, clock, deps.offline_after, deps.freezes),
        mutating=False,
    )
    add(
        "DescribeMachineSnapshot",
        DescribeMachineSnapshotRequest,
        MachineSnapshotAction(deps.inventory, display, clock),
        mutating=False,
    )
    return service
