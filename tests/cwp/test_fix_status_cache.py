"""DescribeVulFixStatus answers from its cache only while they are still true."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from tests.cwp.inventory_setup import caller_of
from tests.fixing.engine_harness import Harness, make_harness
from vulfix.cwp.display_time import DisplayClock, parse_zone
from vulfix.cwp.fix_status import DescribeVulFixStatusRequest
from vulfix.cwp.fix_status_action import FixStatusAction
from vulfix.fixing.task_view import RETRY_WINDOW


@pytest.fixture
async def harness(migrated_db_url: str) -> AsyncIterator[Harness]:
    h = await make_harness(migrated_db_url)
    yield h
    await h.store.engine.dispose()


async def answer(action: FixStatusAction, harness: Harness, fix_id: int) -> dict[str, Any]:
    body = await action(DescribeVulFixStatusRequest(fix_id=fix_id), caller_of(harness.account_id))
    decoded: dict[str, Any] = msgspec.json.decode(bytes(body))
    return decoded


async def test_a_finished_task_stops_offering_a_retry_when_the_window_closes(
    harness: Harness,
) -> None:
    await harness.add_host("h0", snapshots=False)
    await harness.add_vulnerability(7, on=["h0"])
    fix_id = await harness.create([(7, ["h0"])])
    await harness.finish("h0", "failure", "E: broken")
    action = FixStatusAction(harness.reader, DisplayClock(parse_zone("+08:00")), harness.clock)

    assert (await answer(action, harness, fix_id))["IsAllowRetry"] == 1
    harness.clock.advance(RETRY_WINDOW.total_seconds() - 1)
    assert (await answer(action, harness, fix_id))["IsAllowRetry"] == 1
    harness.clock.advance(2)
    assert (await answer(action, harness, fix_id))["IsAllowRetry"] == 0
