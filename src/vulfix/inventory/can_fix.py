"""Which hosts a vulnerability affects, and whether each can be fixed now.

A finding's stored state says what the scanner and the fix engine know; whether the fix can
run now also depends on the host's agent, which must have been seen recently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from vulfix.inventory.records import MAX_ID, AutoFixState

DEFAULT_OFFLINE_AFTER = timedelta(seconds=90)
# States that promise a fix (now, or again after a failure): both need a live agent.
NEEDS_AGENT = frozenset({AutoFixState.CAN_FIX, AutoFixState.FIX_FAILED})


@dataclass(frozen=True, slots=True)
class AffectedHost:
    quuid: str
    uuid: str
    host_name: str
    host_ip: str
    instance_id: str
    machine_type: str
    tags: tuple[str, ...]
    state: int  # the finding's stored IsSupportAutoFix
    last_seen_at: datetime | None  # None: no agent ever enrolled


@dataclass(frozen=True, slots=True)
class AffectedVulnerability:
    vul_id: int
    vul_name: str
    vul_category: int
    fix_tag: tuple[str, ...]
    hosts: tuple[AffectedHost, ...]


class FindingReader(Protocol):
    async def affected_hosts(
        self, account_id: int, vul_ids: Sequence[int], quuids: Sequence[str] | None
    ) -> list[AffectedVulnerability]:
        """The account's vulnerabilities among `vul_ids` (any order), each with the hosts
        that have a finding for it, narrowed to `quuids` when given."""
        ...


def agent_online(last_seen_at: datetime | None, now: datetime, offline_after: timedelta) -> bool:
    return last_seen_at is not None and now - last_seen_at <= offline_after


def shown_state(state: int, online: bool) -> int:
    """The IsSupportAutoFix a caller sees: a promised fix shows 2 while the agent is offline."""
    if not online and state in NEEDS_AGENT:
        return int(AutoFixState.AGENT_OFFLINE)
    return state


@dataclass(frozen=True, slots=True)
class HostFixability:
    host: AffectedHost
    is_support_auto_fix: int
    agent_online: bool


@dataclass(frozen=True, slots=True)
class VulnerabilityFixability:
    vulnerability: AffectedVulnerability
    hosts: tuple[HostFixability, ...]


async def fixable_hosts(
    reader: FindingReader,
    account_id: int,
    vul_ids: Sequence[int],
    quuids: Sequence[str] | None,
    now: datetime,
    offline_after: timedelta = DEFAULT_OFFLINE_AFTER,
) -> list[VulnerabilityFixability]:
    """One entry per requested vulnerability the account has, in the order requested.

    An empty `quuids` narrows nothing: a flattened request cannot tell it from an absent one.
    """
    # Ids outside the stored range cannot exist; keeping them out spares the driver.
    wanted = [vul_id for vul_id in dict.fromkeys(vul_ids) if 1 <= vul_id <= MAX_ID]
    if not wanted:
        return []
    narrowed = list(dict.fromkeys(quuids)) if quuids else None
    found = {v.vul_id: v for v in await reader.affected_hosts(account_id, wanted, narrowed)}
    answer = []
    for vul_id in wanted:
        vulnerability = found.get(vul_id)
        if vulnerability is None:
            continue
        hosts = []
        for host in vulnerability.hosts:
            online = agent_online(host.last_seen_at, now, offline_after)
            hosts.append(HostFixability(host, shown_state(host.state, online), online))
        answer.append(VulnerabilityFixability(vulnerability, tuple(hosts)))
    return answer
