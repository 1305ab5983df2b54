"""The fix workflow through the official Python SDK against `vulfix serve` and `vulfix simulate`.

Three imported fleets with simulated agents: `m*` fail now and then (retries must recover
them), `f*` fail every fix (for the error budget), `s*` are slow (for cancellation).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.cwp.v20180228 import cwp_client, models

from tests.e2e.fleets import (
    enroll_token,
    host,
    import_fleet,
    start_agents,
    stop_agents,
    write_fleet,
)
from tests.e2e.processes import ApiKey, ServerProcess, wait_for
from tests.e2e.sdk_clients import client, common_client

MAIN = [f"m{n}" for n in range(6)] + ["mbm"]
FAILING = ["f0", "f1", "f2"]
SLOW = ["s0", "s1", "s2"]


@dataclass
class Fleet:
    server: ServerProcess
    key: ApiKey
    cwp: cwp_client.CwpClient
    common: CommonClient


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("workflow")
    server = ServerProcess(
        directory, ("--rate-limit", "0"), env={"VULFIX_ENGINE_INTERVAL": "0.2"}
    ).start()
    key = server.create_key("acme")
    main = write_fleet(
        directory / "main.json",
        [host(q, n, "BM" if q == "mbm" else "CVM") for n, q in enumerate(MAIN)],
        {501: MAIN, 502: MAIN, 503: MAIN[:3], 504: MAIN[:3]},
    )
    failing = write_fleet(
        directory / "failing.json", [host(q, 50 + n) for n, q in enumerate(FAILING)], {501: FAILING}
    )
    slow = write_fleet(
        directory / "slow.json", [host(q, 60 + n) for n, q in enumerate(SLOW)], {501: SLOW}
    )
    agents = []
    for path in (main, failing, slow):
        import_fleet(server, "acme", path)
    token = enroll_token(server, "acme")
    log = directory / "agents.log"
    agents.append(
        start_agents(
            server,
            token,
            main,
            log,
            "--fail-rate",
            "0.35",
            "--snapshot-fail-rate",
            "0.35",
            "--speed",
            "40",
            "--seed",
            "11",
        )
    )
    agents.append(
        start_agents(
            server, token, failing, log, "--fail-rate", "1", "--speed", "40", "--seed", "3"
        )
    )
    agents.append(start_agents(server, token, slow, log, "--speed", "0.3", "--seed", "5"))
    cwp = client(server.endpoint, key, language="en-US")
    common = common_client(server.endpoint, key, language="en-US")
    fleet = Fleet(server, key, cwp, common)
    wait_for(
        lambda: all(h.AgentStatus == 1 for h in can_fix(fleet, 501).HostList), "every agent online"
    )
    yield fleet
    for process in agents:
        stop_agents(process)
    server.stop()


def request(kind: str, **params: Any) -> Any:
    model = getattr(models, kind + "Request")()
    model.from_json_string(json.dumps(params))
    return model


def can_fix(fleet: Fleet, vul_id: int) -> Any:
    return fleet.cwp.DescribeCanFixVulMachine(
        request("DescribeCanFixVulMachine", VulIds=[vul_id])
    ).VulInfo[0]


def status(fleet: Fleet, **lookup: Any) -> Any:
    return fleet.cwp.DescribeVulFixStatus(request("DescribeVulFixStatus", **lookup))


def create(fleet: Fleet, items: list[dict[str, Any]], save_days: int = 1) -> int:
    answer = fleet.cwp.CreateVulFix(
        request("CreateVulFix", CreateVulFixTaskQuuids=items, SaveDays=save_days)
    )
    return int(answer.FixId)


def finished(fleet: Fleet, fix_id: int) -> Any:
    box: list[Any] = []

    def done() -> bool:
        box[:] = [status(fleet, FixId=fix_id)]
        return bool(box[0].FixProgress == 100)

    wait_for(done, f"task {fix_id} to finish")
    return box[0]


def api_error(call: Callable[[], Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as caught:
        call()
    return caught.value


def test_can_fix_lists_affected_hosts_with_their_state(fleet: Fleet) -> None:
    answer = fleet.cwp.DescribeCanFixVulMachine(
        request("DescribeCanFixVulMachine", VulIds=[503, 99999])
    )
    assert [v.VulId for v in answer.VulInfo] == [503]
    hosts = {h.Quuid: h for h in answer.VulInfo[0].HostList}
    assert set(hosts) == set(MAIN[:3])
    assert all(
        h.IsSupportAutoFix == 1 and h.AgentStatus == 1 and h.Tags == ["e2e"] for h in hosts.values()
    )
    narrowed = fleet.cwp.DescribeCanFixVulMachine(
        request("DescribeCanFixVulMachine", VulIds=[503], Quuids=["m1"])
    )
    assert [h.Quuid for h in narrowed.VulInfo[0].HostList] == ["m1"]


def test_snapshot_check_is_false_before_any_snapshot(fleet: Fleet) -> None:
    answer = fleet.cwp.DescribeMachineSnapshot(
        request("DescribeMachineSnapshot", Quuids=MAIN[:6], Type=0, Limit=10, Offset=0)
    )
    assert (answer.TotalCount, answer.SnapshotCheck, answer.List) == (0, False, [])


def test_a_task_reaches_100_and_retries_fix_every_failure(fleet: Fleet) -> None:
    fix_id = create(fleet, [{"Quuids": MAIN, "VulId": 501}], save_days=3)
    first = status(fleet, FixId=fix_id)
    assert first.HostCnt == 7 and first.FixEndTime == "" and len(first.SnapshotList) == 7
    assert can_fix(fleet, 501).HostList[0].IsSupportAutoFix in (5, 6, 9)
    retried = {"snapshot": 0, "fix": 0}
    for _ in range(20):
        done = finished(fleet, fix_id)
        assert done.FixEndTime != "" and done.RemainingTime == 0
        if done.FixSuccessCnt == done.HostCnt:
            break
        for snapshot in done.SnapshotList:
            if snapshot.Status == 2:
                assert snapshot.FailReason
                fleet.cwp.RetryCreateSnapshot(
                    request(
                        "RetryCreateSnapshot", FixId=fix_id, Quuid=snapshot.Quuid, Id=snapshot.Id
                    )
                )
                retried["snapshot"] += 1
        for record in done.VulFixList[0].HostList:
            if record.Status == 3:
                fleet.cwp.RetryVulFix(
                    request("RetryVulFix", FixId=fix_id, Quuid=record.Quuid, VulId=501)
                )
                retried["fix"] += 1
    assert done.FixSuccessCnt == done.HostCnt == 7 and done.FixFailCnt == 0
    assert retried["snapshot"] > 0 and retried["fix"] > 0, retried
    assert {s.Quuid: s.Status for s in done.SnapshotList}["mbm"] == 10
    assert all(s.SnapshotId.startswith("snap-") for s in done.SnapshotList if s.Quuid != "mbm")
    check = fleet.cwp.DescribeMachineSnapshot(
        request("DescribeMachineSnapshot", Quuids=MAIN[:6], Type=0, Limit=10, Offset=0)
    )
    assert check.SnapshotCheck is True and check.TotalCount == 6
    assert {h.Quuid: h.IsSupportAutoFix for h in can_fix(fleet, 501).HostList}["m0"] == 6


def test_every_lookup_mode_narrows_lists_and_counts(fleet: Fleet) -> None:
    fix_id = create(
        fleet,
        [{"Quuids": MAIN[:3], "VulId": 504, "KbId": 9001}, {"Quuids": MAIN[:3], "VulId": 503}],
    )
    finished(fleet, fix_id)
    assert status(fleet, VulId=504).FixId == fix_id
    by_host = status(fleet, VulId=503, Quuid="m2")
    assert by_host.FixId == fix_id and by_host.HostCnt == 1
    assert [h.Quuid for v in by_host.VulFixList for h in v.HostList] == ["m2"]
    by_kb = status(fleet, FixId=fix_id, KbId=9001)
    assert [(v.VulId, v.KbId, v.KbNumber) for v in by_kb.VulFixList] == [(504, 9001, "KB9001")]
    assert (
        api_error(lambda: status(fleet, FixId=fix_id, KbId=9002)).get_code()
        == "InvalidParameterValue"
    )
    assert (
        api_error(lambda: status(fleet, Quuid="m2")).get_code()
        == "InvalidParameter.MissingParameter"
    )
    assert api_error(lambda: status(fleet)).get_code() == "MissingParameter"


def test_save_days_zero_relies_on_snapshots_from_the_last_24_hours(fleet: Fleet) -> None:
    fix_id = create(fleet, [{"Quuids": MAIN, "VulId": 502}], save_days=0)
    snapshots = {s.Quuid: s.Status for s in status(fleet, FixId=fix_id).SnapshotList}
    assert snapshots == {**dict.fromkeys(MAIN[:6], 11), "mbm": 10}
    error = api_error(lambda: create(fleet, [{"Quuids": FAILING, "VulId": 501}], save_days=0))
    assert error.get_code() == "InvalidParameterValue" and "f0" in error.get_message()


def test_max_errors_stops_the_hosts_not_yet_started(fleet: Fleet) -> None:
    items = [{"Quuids": FAILING, "VulId": 501}]
    answer = fleet.common.call_json(
        "CreateVulFix",
        {"CreateVulFixTaskQuuids": items, "SaveDays": 1, "MaxConcurrency": "1", "MaxErrors": "0"},
    )
    done = finished(fleet, answer["Response"]["FixId"])
    reasons = sorted(h.FailReason for h in done.VulFixList[0].HostList)
    assert done.FixFailCnt == 3 and reasons.count("stopped: error budget exceeded") == 2
    bad = api_error(
        lambda: fleet.common.call_json(
            "CreateVulFix", {"CreateVulFixTaskQuuids": items, "SaveDays": 1, "MaxErrors": "lots"}
        )
    )
    assert bad.get_code() == "InvalidParameter.ParsingError"


def test_cancel_stops_a_running_task_and_the_host_log_shows_output(fleet: Fleet) -> None:
    answer = fleet.common.call_json(
        "CreateVulFix",
        {
            "CreateVulFixTaskQuuids": [{"Quuids": SLOW, "VulId": 501}],
            "SaveDays": 1,
            "MaxConcurrency": "1",
        },
    )
    fix_id = answer["Response"]["FixId"]
    # One host under way (MaxConcurrency 1): its snapshot job is leased, as /metrics shows.
    wait_for(lambda: leased_jobs(fleet, "snapshot") == 1, "the first host to start", timeout=20)
    fleet.common.call_json("CancelVulFix", {"FixId": fix_id})
    done = finished(fleet, fix_id)
    cancelled = [s for s in done.SnapshotList if s.FailReason == "cancelled by the operator"]
    assert len(cancelled) == 2, "the host under way finishes, the two waiting are cancelled"
    assert (
        api_error(lambda: fleet.common.call_json("CancelVulFix", {"FixId": 987654})).get_code()
        == "ResourceNotFound"
    )
    log = fleet.common.call_json(
        "DescribeVulFixHostLog", {"FixId": 1, "Quuid": "m0", "VulId": 501}
    )["Response"]
    assert log["Status"] == 2 and log["ExitCode"] == 0 and log["Output"]


def test_another_accounts_task_is_indistinguishable_from_a_missing_one(fleet: Fleet) -> None:
    stranger = client(fleet.server.endpoint, fleet.server.create_key("stranger"), language="en-US")
    theirs = api_error(
        lambda: stranger.DescribeVulFixStatus(request("DescribeVulFixStatus", FixId=1))
    )
    assert status(fleet, FixId=1).FixId == 1  # it exists, for its own account
    nowhere = api_error(
        lambda: stranger.DescribeVulFixStatus(request("DescribeVulFixStatus", FixId=987654))
    )
    assert theirs.get_code() == nowhere.get_code() == "InvalidParameterValue"
    assert theirs.get_message() == nowhere.get_message().replace("987654", "1")
    retry = api_error(
        lambda: stranger.RetryVulFix(request("RetryVulFix", FixId=1, Quuid="m0", VulId=501))
    )
    assert retry.get_code() == "ResourceNotFound"
    assert (
        stranger.DescribeCanFixVulMachine(request("DescribeCanFixVulMachine", VulIds=[501])).VulInfo
        == []
    )


def leased_jobs(fleet: Fleet, kind: str) -> float:
    text = httpx.get(f"http://{fleet.server.endpoint}/metrics").text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("vulfix_engine_jobs{")
        and f'kind="{kind}"' in line
        and 'state="leased"' in line
    )


def test_engine_figures_are_on_metrics(fleet: Fleet) -> None:
    def fix_jobs_done() -> bool:
        text = httpx.get(f"http://{fleet.server.endpoint}/metrics").text
        lines = [line for line in text.splitlines() if line.startswith("vulfix_engine_jobs{")]
        done = [
            line
            for line in lines
            if 'kind="fix"' in line and 'state="done"' in line and 'outcome="success"' in line
        ]
        return bool(done) and float(done[0].split()[-1]) > 0 and "vulfix_engine_queue_depth" in text

    wait_for(fix_jobs_done, "engine figures on /metrics", timeout=15)
    text = httpx.get(f"http://{fleet.server.endpoint}/metrics").text
    assert (
        "vulfix_engine_lease_expiries_total" in text
        and "vulfix_engine_dispatch_timeouts_total" in text
    )
