"""The CWP product: its name, version and the table of actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vulfix.cwp.display_time import DisplayClock
from vulfix.cwp.fix_status import DescribeVulFixStatusRequest
from vulfix.cwp.fix_status_action import FixStatusAction
from vulfix.fixing.task_status import TaskReader
from vulfix.tcapi import ApiService

SERVICE_NAME = "cwp"
API_VERSION = "2018-02-28"


def build_cwp_service(
    reader: TaskReader, display: DisplayClock, now: Callable[[], datetime]
) -> ApiService:
    service = ApiService(SERVICE_NAME, API_VERSION)
    service.add(
        "DescribeVulFixStatus",
        DescribeVulFixStatusRequest,
        FixStatusAction(reader, display, now),
        mutating=False,
    )
    return service
