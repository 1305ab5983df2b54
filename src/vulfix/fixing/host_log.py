"""What an agent reported for one host's fix: the DescribeVulFixHostLog answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class HostLog:
    status: int
    exit_code: int | None
    output_tail: str
    fail_reason: str
    modified_at: datetime
