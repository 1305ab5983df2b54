"""The console's guarantees at the HTTP level, against a real `vulfix serve`: sessions,
CSRF, read-only keys, isolation between accounts, and cheap live updates."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import account_id_of, insert_bare_task
from tests.e2e.console_session import console_client, csrf_token, sign_in
from tests.e2e.fleets import fleet_at_work, host, write_fleet
from tests.e2e.processes import ApiKey, ServerProcess
from tests.e2e.sdk_clients import common_client


@dataclass
class Console:
    server: ServerProcess
    key: ApiKey
    reader: ApiKey
    stranger: ApiKey
    fix_id: int


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    directory = tmp_path_factory.mktemp("console-http")
    # Tests sign in many times a second; the limit has its own test and server.
    env = {"VULFIX_CONSOLE_SIGN_IN_RATE": "0"}
    server = ServerProcess(directory, ("--rate-limit", "0"), env=env).start()
    key, reader = server.create_key("acme"), server.create_key("acme", read_only=True)
    stranger = server.create_key("globex")
    hosts = ["c1", "c2"]
    fleet = write_fleet(directory / "acme.json", [host(q, n) for n, q in enumerate(hosts)],
                        {501: hosts})  # fmt: skip
    # Agents so slow that the task is still running when the tests look at it.
    with fleet_at_work(server, key, fleet, directory / "agents.log", "--speed", "0.01",
                       hosts=len(hosts)):  # fmt: skip
        items = [{"Quuids": hosts, "VulId": 501}]
        created = common_client(server.endpoint, key).call_json(
            "CreateVulFix", {"CreateVulFixTaskQuuids": items, "SaveDays": 1}
        )
        yield Console(server, key, reader, stranger, created["Response"]["FixId"])
    server.stop()


def signed_in(console: Console, key: ApiKey) -> httpx.Client:
    client = console_client(console.server.endpoint)
    assert sign_in(client, key).status_code == 303
    return client


def test_pages_need_a_session_and_sign_in_returns_to_the_page(console: Console) -> None:
    client = console_client(console.server.endpoint)
    page = f"/console/tasks/{console.fix_id}"
    answer = client.get(page)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/sign-in?next={page.replace('/', '%2F')}" or (
        answer.headers["location"] == f"/console/sign-in?next={page}"
    )
    signed = sign_in(client, console.key, page)
    assert signed.status_code == 303 and signed.headers["location"] == page
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert console.key.secret_key not in cookie
    shown = client.get(page)
    assert shown.status_code == 200 and f"Fix task #{console.fix_id}" in shown.text
    assert "default-src 'self'" in shown.headers["content-security-policy"]
    assert shown.headers["x-frame-options"] == "DENY"


def test_a_wrong_key_or_a_foreign_next_page_gets_nowhere(console: Console) -> None:
    client = console_client(console.server.endpoint)
    wrong = ApiKey("acme", 0, console.key.secret_id, "not-the-key")
    refused = sign_in(client, wrong)
    assert refused.status_code == 401 and "do not match" in refused.text
    assert "not-the-key" not in refused.text
    assert client.get("/console/tasks").status_code == 303, "still signed out"
    away = sign_in(client, console.key, "https://evil.example/console/x")
    assert away.headers["location"] == "/console/tasks"


def test_forms_without_the_sessions_csrf_token_change_nothing(console: Console) -> None:
    client = signed_in(console, console.key)
    cancel = f"/console/tasks/{console.fix_id}/cancel"
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post(cancel, data=data)
        assert refused.status_code == 403 and "CSRF check failed" in refused.text
    other = console_client(console.server.endpoint)
    other_token = csrf_token(other.get("/console/sign-in").text)
    assert client.post(cancel, data={"csrf_token": other_token}).status_code == 403
    task = client.get(f"/console/tasks/{console.fix_id}")
    assert "Cancel task" in task.text, "the task is still running"
    key = {"secret_id": console.key.secret_id, "secret_key": console.key.secret_key}
    tokenless = console_client(console.server.endpoint)
    assert tokenless.post("/console/sign-in", data=key).status_code == 403
    assert tokenless.get("/console/tasks").status_code == 303, "not signed in"


def test_a_read_only_key_sees_everything_and_can_change_nothing(console: Console) -> None:
    client = signed_in(console, console.reader)
    task = client.get(f"/console/tasks/{console.fix_id}")
    assert task.status_code == 200 and "read-only" in task.text
    assert "Cancel task" not in task.text and "Retry" not in task.text
    flow = client.get("/console/vulnerabilities/501")
    assert flow.status_code == 200 and "Create fix task" not in flow.text
    refused = client.post(f"/console/tasks/{console.fix_id}/cancel",
                          data={"csrf_token": csrf_token(task.text)})  # fmt: skip
    assert refused.status_code == 403 and "UnauthorizedOperation" in refused.text
    assert (
        "Cancel task"
        in signed_in(console, console.key).get(f"/console/tasks/{console.fix_id}").text
    )


def test_another_accounts_task_is_not_there(console: Console) -> None:
    client = signed_in(console, console.stranger)
    answer = client.get(f"/console/tasks/{console.fix_id}")
    assert answer.status_code == 404 and "There is no fix task" in answer.text
    assert f"#{console.fix_id}<" not in client.get("/console/tasks").text
    # Host rows by their marker: a bare "c1" also turns up in the page's random CSRF token.
    assert 'data-quuid="c' not in client.get("/console/hosts").text
    assert 'data-quuid="c1"' in signed_in(console, console.key).get("/console/hosts").text


def test_a_disabled_key_ends_its_sessions(console: Console) -> None:
    key = console.server.create_key("acme")
    client = signed_in(console, key)
    assert client.get("/console/hosts").status_code == 200
    console.server.keys("disable", key.secret_id)
    deadline = time.monotonic() + 5
    while client.get("/console/hosts").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.get("/console/hosts").status_code == 303


def test_an_unchanged_live_fragment_costs_a_304(console: Console) -> None:
    client = signed_in(console, console.key)
    url = f"/console/tasks/{console.fix_id}?fragment=1"
    first = client.get(url)
    assert first.status_code == 200 and "<html" not in first.text
    assert re.search(r'data-figure="HostCnt">2<', first.text)
    again = client.get(url, headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    signed_out = console_client(console.server.endpoint).get(url)
    assert signed_out.status_code == 401, "a live update of an ended session asks for a reload"


def test_the_figures_are_describe_vul_fix_status_figures(console: Console) -> None:
    status = common_client(console.server.endpoint, console.key).call_json(
        "DescribeVulFixStatus", {"FixId": console.fix_id}
    )["Response"]
    page = signed_in(console, console.key).get(f"/console/tasks/{console.fix_id}?fragment=1").text
    for figure in ("HostCnt", "FixSuccessCnt", "FixFailCnt", "SnapshotFailCnt"):
        assert f'data-figure="{figure}">{status[figure]}<' in page, figure
    assert json.dumps(status["SnapshotProgress"]) + " %" in page


def test_sign_in_attempts_are_rate_limited_per_address(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()  # the default: 5 attempts a second
    client = console_client(server.endpoint)
    token = csrf_token(client.get("/console/sign-in").text)
    codes = [
        client.post("/console/sign-in", data={"csrf_token": token, "secret_id": "AKIDguess",
                                              "secret_key": f"guess-{n}"}).status_code
        for n in range(12)
    ]  # fmt: skip
    server.stop()
    assert set(codes) == {401, 429} and codes[:5] == [401] * 5, codes


def test_task_pages_hold_twenty_newest_first(console: Console) -> None:
    key = console.server.create_key("initech")
    account = account_id_of(console.server.db_url, "initech")
    fix_ids = [insert_bare_task(console.server.db_url, account) for _ in range(25)]
    client = signed_in(console, key)
    first, second = client.get("/console/tasks").text, client.get("/console/tasks?page=2").text
    shown = [int(n) for n in re.findall(r'<tr data-fix-id="(\d+)"', first)]
    assert shown == sorted(fix_ids, reverse=True)[:20] and "Page 1 of 2" in first
    rest = [int(n) for n in re.findall(r'<tr data-fix-id="(\d+)"', second)]
    assert rest == sorted(fix_ids, reverse=True)[20:] and "Page 2 of 2" in second


def test_cancel_from_the_console_stops_the_task(console: Console) -> None:
    """Last: it ends the module's running task."""
    client = signed_in(console, console.key)
    page = client.get(f"/console/tasks/{console.fix_id}")
    cancelled = client.post(f"/console/tasks/{console.fix_id}/cancel",
                            data={"csrf_token": csrf_token(page.text)})  # fmt: skip
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == f"/console/tasks/{console.fix_id}?notice=cancelled"
    shown = client.get(cancelled.headers["location"]).text
    assert "The task was cancelled" in shown
    status = common_client(console.server.endpoint, console.key).call_json(
        "DescribeVulFixStatus", {"FixId": console.fix_id}
    )["Response"]
    records = status["VulFixList"][0]["HostList"]
    assert {(r["Status"], r["FailReason"]) for r in records} == {(3, "cancelled by the operator")}
    assert status["FixEndTime"] and "Cancel task" not in shown


def test_oversized_or_malformed_forms_are_refused_plainly(console: Console) -> None:
    client = console_client(console.server.endpoint)
    token = csrf_token(client.get("/console/sign-in").text)
    huge = client.post("/console/sign-in", data={"csrf_token": token, "secret_id": "x" * 10_000})
    assert huge.status_code == 413 and "Traceback" not in huge.text
    broken = client.post(
        "/console/sign-in",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert broken.status_code in (400, 403) and "Traceback" not in broken.text  # never a 500
    assert client.get("/console/sign-in").status_code == 200


def test_behind_a_trusted_tls_proxy_the_session_cookie_is_secure(console: Console) -> None:
    client = console_client(console.server.endpoint)
    proxied = client.get("/console/sign-in", headers={"x-forwarded-proto": "https"})
    assert "; secure" in proxied.headers["set-cookie"].lower(), "127.0.0.1 is trusted by default"
    direct = client.get("/console/sign-in")
    assert "; secure" not in direct.headers["set-cookie"].lower()
