from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from vulfix.inventory.can_fix import (
    AffectedHost,
    AffectedVulnerability,
    agent_online,
    fixable_hosts,
    shown_state,
)
from vulfix.inventory.records import AutoFixState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OFFLINE_AFTER = timedelta(seconds=90)


def test_an_agent_is_online_within_the_window_inclusive() -> None:
    assert agent_online(NOW - timedelta(seconds=90), NOW, OFFLINE_AFTER)
    assert not agent_online(NOW - timedelta(seconds=91), NOW, OFFLINE_AFTER)
    assert not agent_online(None, NOW, OFFLINE_AFTER)


@pytest.mark.parametrize("state", [AutoFixState.CAN_FIX, AutoFixState.FIX_FAILED])
def test_a_promised_fix_shows_agent_offline_without_an_agent(state: AutoFixState) -> None:
    assert shown_state(state, online=False) == AutoFixState.AGENT_OFFLINE
    assert shown_state(state, online=True) == state


@pytest.mark.parametrize("state", [0, 3, 4, 5, 6, 7, 10, 11, 12])
def test_other_states_show_as_stored_whatever_the_agent(state: int) -> None:
    assert shown_state(state, online=False) == state


def _host(quuid: str, state: int, seen: datetime | None) -> AffectedHost:
    return AffectedHost(quuid, "", quuid, "", "", "CVM", (), state, seen)


class FakeReader:
    def __init__(self, vulnerabilities: list[AffectedVulnerability]) -> None:
        self.vulnerabilities = vulnerabilities
        self.calls: list[tuple[list[int], list[str] | None]] = []

    async def affected_hosts(
        self, account_id: int, vul_ids: Sequence[int], quuids: Sequence[str] | None
    ) -> list[AffectedVulnerability]:
        self.calls.append((list(vul_ids), None if quuids is None else list(quuids)))
        return [v for v in self.vulnerabilities if v.vul_id in vul_ids]


async def test_answers_follow_the_requested_order_once_each() -> None:
    reader = FakeReader([AffectedVulnerability(v, f"v{v}", 4, (), ()) for v in (1, 2, 3)])
    answer = await fixable_hosts(reader, 1, [3, 99, 1, 3], None, NOW)
    assert [entry.vulnerability.vul_id for entry in answer] == [3, 1]
    assert reader.calls == [([3, 99, 1], None)]


async def test_ids_that_cannot_exist_are_not_looked_up() -> None:
    reader = FakeReader([])
    assert await fixable_hosts(reader, 1, [0, 2**31, 2**64 - 1], None, NOW) == []
    assert reader.calls == []


async def test_an_empty_host_list_narrows_nothing() -> None:
    reader = FakeReader([])
    await fixable_hosts(reader, 1, [1], [], NOW)
    await fixable_hosts(reader, 1, [1], ["a", "b", "a"], NOW)
    assert reader.calls == [([1], None), ([1], ["a", "b"])]


async def test_each_host_gets_its_shown_state_and_agent_status() -> None:
    hosts = (
        _host("online", AutoFixState.CAN_FIX, NOW - timedelta(seconds=10)),
        _host("gone", AutoFixState.CAN_FIX, NOW - timedelta(minutes=5)),
        _host("never", AutoFixState.FIX_FAILED, None),
    )
    reader = FakeReader([AffectedVulnerability(1, "v1", 4, (), hosts)])
    (entry,) = await fixable_hosts(reader, 1, [1], None, NOW)
    shown = [(h.host.quuid, h.is_support_auto_fix, h.agent_online) for h in entry.hosts]
    assert shown == [("online", 1, True), ("gone", 2, False), ("never", 2, False)]
