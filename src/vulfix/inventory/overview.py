"""The fleet at a glance, for the console: each host with its agent and pending work, and
each vulnerability with how many hosts it touches and where their fixes stand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from vulfix.inventory.records import AutoFixState

T = TypeVar("T")

# A finding that needs no more work: fixed, or ignored by the operator.
SETTLED_STATES = frozenset({AutoFixState.FIXED, AutoFixState.IGNORED})


@dataclass(frozen=True, slots=True)
class HostOverview:
    quuid: str
    host_name: str
    host_ip: str
    os_family: str
    machine_type: str
    tags: list[str]
    enrolled: bool
    last_seen_at: datetime | None
    pending_vulnerabilities: int
    latest_snapshot_id: str
    latest_snapshot_at: datetime | None


@dataclass(frozen=True, slots=True)
class VulnerabilityOverview:
    vul_id: int
    vul_name: str
    level: str
    vul_category: int
    cve_ids: list[str]
    fix_methods: list[int]
    # Findings by IsSupportAutoFix state; settled ones (fixed, ignored) count apart.
    affected_hosts: int
    can_fix_hosts: int
    fixing_hosts: int
    fixed_hosts: int
    failed_hosts: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    total: int
    items: list[T]


class OverviewReader(Protocol):
    async def host_page(self, account_id: int, offset: int, limit: int) -> Page[HostOverview]:
        """Hosts by name, then Quuid."""
        ...

    async def vulnerability_page(
        self, account_id: int, offset: int, limit: int
    ) -> Page[VulnerabilityOverview]:
        """Vulnerabilities with unsettled findings first, then by VulId."""
        ...

    async def fix_id_page(self, account_id: int, offset: int, limit: int) -> Page[int]:
        """The account's FixIds, newest first."""
        ...
