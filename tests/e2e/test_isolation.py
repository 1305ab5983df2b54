"""Isolation between accounts and between hosts, against a real `vulfix serve` (log at DEBUG)
with `vulfix simulate` agents for two accounts, `alpha` and `bravo`, of the same shape.

Another account's FixId, Quuid, VulId or snapshot Id is answered exactly as one that exists
nowhere; a host token reaches only its own host's jobs; enrolment tokens expire and enrol only
into their own account; no secret reaches a log.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import pytest

from tests.e2e.fleets import stop_agents
from tests.e2e.processes import ServerProcess, run_cli, wait_for
from tests.e2e.two_accounts import Account, Site, open_account, start_real_agent

SCHEMA_CODES = {"InvalidParameter", "MissingParameter", "UnknownParameter"}
TOKEN_PATTERN = re.compile(r"vf[eh]_[A-Za-z0-9_-]{8,}")


@dataclass(frozen=True)
class Ids:
    fix: int
    quuid: str
    vul: int
    snap: int


# Identifiers that exist in no account; none is a substring of another.
NOWHERE = Ids(fix=900000001, quuid="nowhere-q", vul=900003, snap=900000002)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("isolation")
    env = {"VULFIX_LOG_LEVEL": "DEBUG", "VULFIX_ENGINE_INTERVAL": "0.2"}
    server = ServerProcess(directory, ("--rate-limit", "0"), env=env).start()
    with ThreadPoolExecutor(2) as pool:  # the CLI runs of the two accounts, side by side
        alpha = pool.submit(
            open_account, directory, server, "alpha",
            {501: ["a0", "a1", "a2", "ax", "ay", "aw"], 503: ["a0", "a1"]},
            ["a0", "a1", "a2"], ["ax", "ay", "aw"],
        )  # fmt: skip
        bravo = pool.submit(
            open_account, directory, server, "bravo",
            {501: ["b0", "b1", "b2", "bz"], 502: ["b0", "b1", "b2"]}, ["b0", "b1", "b2"], ["bz"],
        )  # fmt: skip
        (a, a_agents), (b, b_agents) = alpha.result(), bravo.result()
    http = httpx.Client(base_url=f"http://{server.endpoint}", timeout=30)
    site = Site(server, a, b, [a_agents, b_agents], http)
    site.agents.append(start_real_agent(server, a.token, "aw"))
    for account in (a, b):
        for quuid in account.manual:
            if quuid != "aw":
                account.host_tokens[quuid] = site.enrol(account.token, quuid).json()["host_token"]
        wait_for(partial(all_online, site, account), f"{account.name}'s agents online")
    both = [{"Quuids": a.simulated, "VulId": 501}, {"Quuids": ["a0", "a1"], "VulId": 503}]
    a.fix_id = create(site, a, both)
    b.fix_id = create(site, b, [{"Quuids": b.simulated, "VulId": 501}])
    for account in (a, b):
        done = finished(site, account)
        account.snapshot_ids = {s["Quuid"]: s["Id"] for s in done["SnapshotList"]}
        assert {s["Status"] for s in done["SnapshotList"]} == {1}
    yield site
    for process in site.agents:
        stop_agents(process)
    http.close()
    server.stop()


def all_online(site: Site, account: Account) -> bool:
    answer = site.ok(account, "DescribeCanFixVulMachine", VulIds=[501])
    hosts = {h["Quuid"]: h["AgentStatus"] for v in answer["VulInfo"] for h in v["HostList"]}
    return all(hosts.get(q) == 1 for q in [*account.simulated, *account.manual])


def create(site: Site, account: Account, items: list[dict[str, Any]]) -> int:
    answer = site.ok(account, "CreateVulFix", CreateVulFixTaskQuuids=items, SaveDays=1)
    return int(answer["FixId"])


def finished(site: Site, account: Account) -> dict[str, Any]:
    box: list[dict[str, Any]] = []

    def done() -> bool:
        box[:] = [site.ok(account, "DescribeVulFixStatus", FixId=account.fix_id)]
        return bool(box[0]["FixProgress"] == 100)

    wait_for(done, f"{account.name}'s task to finish")
    return box[0]


def without_request_id(response: dict[str, Any]) -> dict[str, Any]:
    assert re.fullmatch(r"[0-9a-f-]{36}", response.pop("RequestId"))
    return response


def cases(b: Account) -> list[tuple[str, Callable[[Ids], dict[str, Any]]]]:
    """Every action, with one foreign identifier at a time (the rest B's own where possible)."""
    own_fix, own_snap = b.fix_id, b.snapshot_ids["b0"]
    return [
        ("CreateVulFix", lambda i: {"CreateVulFixTaskQuuids": [{"Quuids": [i.quuid],
                                                                "VulId": 501}], "SaveDays": 1}),
        ("CreateVulFix", lambda i: {"CreateVulFixTaskQuuids": [{"Quuids": ["b0"],
                                                                "VulId": i.vul}], "SaveDays": 1}),
        ("DescribeVulFixStatus", lambda i: {"FixId": i.fix}),
        ("DescribeVulFixStatus", lambda i: {"FixId": i.fix, "KbId": 9001}),
        ("DescribeVulFixStatus", lambda i: {"VulId": i.vul}),
        ("DescribeVulFixStatus", lambda i: {"VulId": i.vul, "Quuid": i.quuid}),
        ("DescribeVulFixStatus", lambda i: {"VulId": 501, "Quuid": i.quuid}),
        ("RetryCreateSnapshot", lambda i: {"FixId": i.fix, "Quuid": i.quuid, "Id": i.snap}),
        ("RetryCreateSnapshot", lambda i: {"FixId": own_fix, "Quuid": "b0", "Id": i.snap}),
        ("RetryCreateSnapshot", lambda i: {"FixId": own_fix, "Quuid": i.quuid, "Id": own_snap}),
        ("RetryVulFix", lambda i: {"FixId": i.fix, "Quuid": i.quuid, "VulId": 501}),
        ("RetryVulFix", lambda i: {"FixId": own_fix, "Quuid": i.quuid, "VulId": 501}),
        ("RetryVulFix", lambda i: {"FixId": own_fix, "Quuid": "b0", "VulId": i.vul}),
        ("CancelVulFix", lambda i: {"FixId": i.fix}),
        ("DescribeVulFixHostLog", lambda i: {"FixId": i.fix, "Quuid": i.quuid, "VulId": 501}),
        ("DescribeVulFixHostLog", lambda i: {"FixId": own_fix, "Quuid": i.quuid, "VulId": 501}),
        ("DescribeVulFixHostLog", lambda i: {"FixId": own_fix, "Quuid": "b0", "VulId": i.vul}),
        ("DescribeCanFixVulMachine", lambda i: {"VulIds": [i.vul]}),
        ("DescribeCanFixVulMachine", lambda i: {"VulIds": [501], "Quuids": [i.quuid]}),
        ("DescribeMachineSnapshot", lambda i: {"Quuids": [i.quuid], "Type": 1, "Limit": 10,
                                               "Offset": 0}),
        ("DescribeMachineSnapshot", lambda i: {"Quuids": ["b0", i.quuid], "Type": 0, "Limit": 10,
                                               "Offset": 0}),
    ]  # fmt: skip


def test_another_accounts_identifiers_are_answered_as_if_they_did_not_exist(site: Site) -> None:
    """For every action and every kind of identifier, B calling with A's identifier gets the
    same HTTP status, code, message and shape as with one that exists nowhere, and A's task
    is left exactly as it was."""
    a, b = site.a, site.b
    theirs = Ids(fix=a.fix_id, quuid="a0", vul=503, snap=a.snapshot_ids["a0"])
    # The foreign identifiers are real: A sees its task, host log, snapshots and findings.
    before = without_request_id(site.ok(a, "DescribeVulFixStatus", FixId=a.fix_id))
    assert site.ok(a, "DescribeVulFixHostLog", FixId=a.fix_id, Quuid="a0", VulId=503)["Output"]
    listed = site.ok(a, "DescribeMachineSnapshot", Quuids=["a0"], Type=1, Limit=10, Offset=0)
    assert listed["TotalCount"] == 1 and listed["SnapshotCheck"] is True
    assert site.ok(a, "DescribeVulFixStatus", VulId=503, Quuid="a0")["FixId"] == a.fix_id
    swaps = [(str(getattr(NOWHERE, n)), str(getattr(theirs, n))) for n in Ids.__annotations__]
    codes: dict[str, set[str]] = {}
    for action, params in cases(b):
        foreign_status, foreign = site.call(b, action, **params(theirs))
        missing_status, missing = site.call(b, action, **params(NOWHERE))
        text = json.dumps(without_request_id(missing))
        for nowhere_value, their_value in swaps:
            text = text.replace(nowhere_value, their_value)
        assert (foreign_status, without_request_id(foreign)) == (
            missing_status,
            json.loads(text),
        ), (
            action,
            params(theirs),
        )
        code = foreign.get("Error", {}).get("Code", "Success")
        assert code not in SCHEMA_CODES, (action, foreign)
        codes.setdefault(action, set()).add(code)
    assert without_request_id(site.ok(a, "DescribeVulFixStatus", FixId=a.fix_id)) == before
    assert codes == {
        "CreateVulFix": {"InvalidParameterValue"},
        "DescribeVulFixStatus": {"InvalidParameterValue"},
        "RetryCreateSnapshot": {"ResourceNotFound"},
        "RetryVulFix": {"ResourceNotFound"},
        "CancelVulFix": {"ResourceNotFound"},
        "DescribeVulFixHostLog": {"ResourceNotFound"},
        "DescribeCanFixVulMachine": {"Success"},
        "DescribeMachineSnapshot": {"Success"},
    }


def test_a_host_token_cannot_take_report_on_or_extend_another_hosts_job(site: Site) -> None:
    """Y's job is invisible to X (same account) and Z (other account): their polls answer 204,
    their reports on its id 404 `unknown_job`, their heartbeats extend nothing; Y's job is
    then still Y's, and Y's own report is applied."""
    a, b = site.a, site.b
    y = a.host_tokens["ay"]
    strangers = [a.host_tokens["ax"], b.host_tokens["bz"]]
    fix_id = create(site, a, [{"Quuids": ["ay"], "VulId": 501}])
    for token in strangers:
        assert site.agent("GET", "/jobs?wait=0", token).status_code == 204
    taken = site.agent("GET", "/jobs?wait=0", y)
    assert taken.status_code == 200 and taken.json()["fix_id"] == fix_id
    job_id = taken.json()["job_id"]
    report = {"outcome": "success", "provider_ref": "ref-y", "duration_seconds": 0.1}
    for token in strangers:
        refused = site.agent("POST", f"/jobs/{job_id}/result", token, json=report)
        assert (refused.status_code, refused.json()["error"]) == (404, "unknown_job")
        beat = site.agent("POST", "/heartbeat", token, json={"running_job_id": job_id})
        assert beat.json() == {"lease_extended": False}
        assert site.agent("GET", "/jobs?wait=0", token).status_code == 204
    snapshot = site.ok(a, "DescribeVulFixStatus", FixId=fix_id)["SnapshotList"][0]
    assert (snapshot["Quuid"], snapshot["Status"]) == ("ay", 0)
    again = site.agent("GET", "/jobs?wait=0", y)
    assert again.json()["job_id"] == job_id
    beat = site.agent("POST", "/heartbeat", y, json={"running_job_id": job_id})
    assert beat.json() == {"lease_extended": True}
    applied = site.agent("POST", f"/jobs/{job_id}/result", y, json=report)
    assert applied.status_code == 200 and applied.json()["applied"] is True
    snapshot = site.ok(a, "DescribeVulFixStatus", FixId=fix_id)["SnapshotList"][0]
    assert snapshot["Status"] == 1


def hosts_named(server: ServerProcess, quuid: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(server.db_url.removeprefix("sqlite:///")) as conn:
        rows = conn.execute(
            "SELECT accounts.name, hosts.host_token_hash, hosts.enrolled_at FROM hosts "
            "JOIN accounts ON accounts.id = hosts.account_id WHERE quuid = ? ORDER BY 1",
            (quuid,),
        )
        return list(rows)


def test_enrolment_tokens_expire_and_enrol_only_into_their_own_account(site: Site) -> None:
    """A token past its lifetime (`--ttl-hours` of 0.36 s) is refused and creates nothing; A's
    token presenting B's Quuid makes a host of A's own and leaves B's host, and its token,
    untouched."""
    server, a, b = site.server, site.a, site.b
    made = run_cli("enroll-token", "create", "--db", server.db_url, "--account", "alpha",
                   "--ttl-hours", "0.0001", "--json", env=server.env)  # fmt: skip
    expired: str = json.loads(made.stdout)["Token"]
    site.secrets.append(expired)
    # The CLI stamps its `now` before it returns: the token is surely dead 0.36 s after that.
    returned = time.time()
    wait_for(lambda: time.time() > returned + 0.5, "the token's lifetime to pass", timeout=5)
    refused = site.enrol(expired, "late-host")
    assert (refused.status_code, refused.json()["error"]) == (403, "enrollment_refused")
    assert "expired" in refused.json()["message"]
    assert hosts_named(server, "late-host") == []

    before = hosts_named(server, "bz")
    assert [row[0] for row in before] == ["bravo"]
    enrolled = site.enrol(a.token, "bz")
    assert enrolled.status_code == 200 and enrolled.json()["quuid"] == "bz"
    intruder = enrolled.json()["host_token"]
    site.secrets.append(intruder)
    after = hosts_named(server, "bz")
    assert [row[0] for row in after] == ["alpha", "bravo"] and after[1] == before[0]
    assert site.agent("POST", "/heartbeat", b.host_tokens["bz"]).status_code == 200
    assert site.agent("GET", "/jobs?wait=0", intruder).status_code == 204
    bravo_view = site.ok(b, "DescribeCanFixVulMachine", VulIds=[501], Quuids=["bz"])
    assert [h["Quuid"] for h in bravo_view["VulInfo"][0]["HostList"]] == ["bz"]


def test_no_secret_reaches_any_log(site: Site) -> None:
    """With the server at DEBUG, after everything above: neither the server's log nor the
    agents' contains a SecretKey, an enrolment or host token, or the master key."""
    for process in site.agents:
        stop_agents(process)  # the agents write their summary as they stop
    server_log = site.server.log_path.read_text(encoding="utf-8")
    agents_log = site.agents_log.read_text(encoding="utf-8")
    real_agent_log = site.real_agent_log.read_text(encoding="utf-8")
    # The server really ran at DEBUG (it has no debug lines of its own; the request log and
    # uvicorn's lines are what it writes), and the logs saw the traffic.
    shown = json.loads(run_cli("config", env=site.server.env).stdout)
    assert shown["log_level"] == "DEBUG"
    assert server_log.count('"account":"bravo"') > 20 and agents_log.count("Hosts enrolled: 3") == 2
    assert " DEBUG " in real_agent_log
    master_key = (site.server.state_dir / "master.key").read_text().strip()
    secrets = [site.a.key.secret_key, site.b.key.secret_key, site.a.token, site.b.token,
               master_key, *site.secrets]  # fmt: skip
    for account in (site.a, site.b):
        secrets += account.host_tokens.values()
    assert len(secrets) >= 9 and all(len(secret) >= 20 for secret in secrets)
    logs = {"server": server_log, "simulate": agents_log, "agent": real_agent_log}
    for name, text in logs.items():
        leaked = [secret[:6] + "..." for secret in secrets if secret in text]
        assert leaked == [], f"{name} contains {leaked}"
        assert TOKEN_PATTERN.findall(text) == [], name
