"""Authentication edges over real HTTP against real `vulfix serve` processes: the timestamp
window, the credential scope's date and service, truncated Authorization headers, the
optional v1 replay cache, and a key disabled while calls are in flight.

Two servers: the defaults, and one with `strict_service` and `v1_replay_cache` on.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.cwp.v20180228 import models

from tests.e2e.processes import ApiKey, ServerProcess, wait_for
from tests.e2e.sdk_clients import client, clock_offset
from tests.signed_requests import RawCall, Signer

ACTION = "DescribeCanFixVulMachine"
BODY = b'{"VulIds": [1]}'


@dataclass
class Target:
    server: ServerProcess
    key: ApiKey
    http: httpx.Client

    def signer(self, key: ApiKey | None = None, service: str = "cwp") -> Signer:
        key = key or self.key
        return Signer(
            key.secret_id, key.secret_key, self.server.endpoint, service=service, action=ACTION
        )

    def send(self, raw: RawCall) -> tuple[int, str, str]:
        """HTTP status, `Error.Code` (or "Success") and `Error.Message` of one raw call."""
        answer = self.http.request(raw.method, raw.path, headers=raw.headers, content=raw.body)
        error = answer.json()["Response"].get("Error", {})
        return answer.status_code, error.get("Code", "Success"), error.get("Message", "")

    def code(self, raw: RawCall) -> str:
        status, code, _ = self.send(raw)
        assert status == 200
        return code


@dataclass
class Servers:
    default: Target
    strict: Target


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    directory = tmp_path_factory.mktemp("auth-edges")
    default = ServerProcess(directory / "default", ("--rate-limit", "0"))
    strict = ServerProcess(
        directory / "strict",
        ("--rate-limit", "0"),
        env={"VULFIX_STRICT_SERVICE": "true", "VULFIX_V1_REPLAY_CACHE": "true"},
    )
    for server in (default, strict):
        server.start_process()
    targets = []
    for server in (default, strict):
        server.wait_ready()
        http = httpx.Client(base_url=f"http://{server.endpoint}", timeout=30)
        targets.append(Target(server, server.create_key("edges"), http))
    yield Servers(*targets)
    for target in targets:
        target.http.close()
        target.server.stop()


def test_timestamps_more_than_300_seconds_away_are_refused(servers: Servers) -> None:
    """301 s old or ahead is `AuthFailure.SignatureExpire`, 299 s either way is accepted, for
    TC3, v1 and the official SDK alike. (Stamps are rounded so that a request delayed by less
    than a second cannot cross the line.)"""
    target = servers.default
    signer = target.signer()
    now = time.time()
    outside = [math.floor(now) - 301, math.ceil(now) + 301]
    inside = [math.ceil(now) - 299, math.floor(now) + 299]
    for timestamp in outside:
        assert target.code(signer.tc3_post(BODY, timestamp=timestamp)) == (
            "AuthFailure.SignatureExpire"
        )
        assert target.code(signer.v1({"VulIds.0": "1"}, timestamp=timestamp)) == (
            "AuthFailure.SignatureExpire"
        )
    for timestamp in inside:
        assert target.code(signer.tc3_post(BODY, timestamp=timestamp)) == "Success"
        assert target.code(signer.v1({"VulIds.0": "1"}, timestamp=timestamp)) == "Success"
    sdk = client(target.server.endpoint, target.key, language="en-US")
    request = models.DescribeCanFixVulMachineRequest()
    request.VulIds = [1]
    for offset in (-302, 302):
        with clock_offset(offset), pytest.raises(TencentCloudSDKException) as refused:
            sdk.DescribeCanFixVulMachine(request)
        assert refused.value.get_code() == "AuthFailure.SignatureExpire"
    with clock_offset(-298):
        assert sdk.DescribeCanFixVulMachine(request).VulInfo == []


def test_a_scope_date_other_than_the_timestamps_utc_date_is_a_signature_failure(
    servers: Servers,
) -> None:
    """The request is correctly signed for the date it names, but that is not the UTC date of
    X-TC-Timestamp: `AuthFailure.SignatureFailure`, naming the scope date."""
    target = servers.default
    now = int(time.time())
    for other_day in (now - 86400, now + 86400):
        date = time.strftime("%Y-%m-%d", time.gmtime(other_day))
        status, code, message = target.send(
            target.signer().tc3_post(BODY, timestamp=now, scope_date=date)
        )
        assert (status, code) == (200, "AuthFailure.SignatureFailure")
        assert "X-TC-Timestamp" in message


def test_the_scope_service_is_free_by_default_and_must_be_cwp_when_strict(
    servers: Servers,
) -> None:
    """By default the key is derived with the service the scope names (the Node SDK signs
    `127`); a scope naming one service over a signature for another fails. With
    `strict_service` only `cwp` is accepted."""
    default, strict = servers.default, servers.strict
    for service in ("cvm", "127"):
        assert default.code(default.signer(service=service).tc3_post(BODY)) == "Success"
        status, code, message = strict.send(strict.signer(service=service).tc3_post(BODY))
        assert (status, code) == (200, "AuthFailure.SignatureFailure")
        assert "`cwp`" in message
    assert strict.code(strict.signer().tc3_post(BODY)) == "Success"
    for target in (default, strict):
        mismatched = target.signer().tc3_post(BODY)
        mismatched.headers["Authorization"] = mismatched.headers["Authorization"].replace(
            "/cwp/tc3_request", "/cvm/tc3_request"
        )
        assert target.code(mismatched) == "AuthFailure.SignatureFailure"


def test_every_truncation_of_the_authorization_header_is_invalid_authorization(
    servers: Servers,
) -> None:
    """Cut anywhere (inside the algorithm, the scope, SignedHeaders, the signature, or down
    to nothing), the header is `AuthFailure.InvalidAuthorization`; whole, it verifies."""
    target = servers.default
    good = target.signer().tc3_post(BODY)
    full = good.headers["Authorization"]
    assert target.code(good) == "Success"
    # A value ending in a space cannot be sent (HTTP trims it): that cut is the one before.
    cuts = [full[:cut] for cut in range(len(full)) if not full[:cut].endswith(" ")]
    answers: Counter[str] = Counter()
    for value in cuts:
        truncated = replace(good, headers={**good.headers, "Authorization": value})
        answers[target.code(truncated)] += 1
    assert answers == {"AuthFailure.InvalidAuthorization": len(cuts)} and len(cuts) > 150


def test_a_replayed_v1_request_is_refused_only_with_the_replay_cache(servers: Servers) -> None:
    """With `v1_replay_cache` on, the same signed v1 request a second time is
    `AuthFailure.SignatureFailure` ("This Nonce was already used."), while a new Nonce, a new
    Timestamp or a repeated TC3 request pass; with it off (the default), a replay passes."""
    default, strict = servers.default, servers.strict
    timestamp = int(time.time())
    # The triple ignores the method: each method gets its own Nonce.
    for method, nonce in (("POST", "4242"), ("GET", "4343")):
        replayed = default.signer().v1({"VulIds.0": "1"}, method=method, nonce=nonce)
        assert [default.code(replayed) for _ in range(2)] == ["Success", "Success"]
        params = {"VulIds.0": "1", "Language": "en-US"}
        once = strict.signer().v1(params, method=method, nonce=nonce, timestamp=timestamp)
        assert strict.code(once) == "Success"
        status, code, message = strict.send(once)
        assert (status, code, message) == (
            200,
            "AuthFailure.SignatureFailure",
            "This Nonce was already used.",
        )
    v1 = strict.signer().v1
    assert strict.code(v1({"VulIds.0": "1"}, nonce="4243", timestamp=timestamp)) == "Success"
    assert strict.code(v1({"VulIds.0": "1"}, nonce="4242", timestamp=timestamp - 1)) == "Success"
    tc3 = strict.signer().tc3_post(BODY)
    assert [strict.code(tc3) for _ in range(2)] == ["Success", "Success"]


def test_a_key_disabled_while_calls_are_in_flight_fails_cleanly_within_a_second(
    servers: Servers,
) -> None:
    """Eight threads call as fast as they can (TC3 and v1) while `vulfix keys disable` runs:
    every answer is HTTP 200 with Success or `AuthFailure.SecretIdNotFound` (never a 5xx or
    InternalError), and every call sent 1.5 s after the change is visible in the database is
    refused (the credential cache keeps a key 1 s)."""
    target = servers.default
    key = target.server.create_key("in-flight")
    stop = threading.Event()
    outcomes: list[tuple[float, int, str]] = []
    failures: list[BaseException] = []

    def caller(index: int) -> None:
        signer = target.signer(key)
        with httpx.Client(base_url=f"http://{target.server.endpoint}", timeout=30) as http:
            sequence = 0
            while not stop.is_set():
                sequence += 1
                if index % 2:
                    raw = signer.v1({"VulIds.0": "1"}, nonce=f"{index}{sequence:08d}")
                else:
                    raw = signer.tc3_post(BODY)
                sent = time.monotonic()
                try:
                    answer = http.request(
                        raw.method, raw.path, headers=raw.headers, content=raw.body
                    )
                    error = answer.json()["Response"].get("Error", {})
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    failures.append(exc)
                    return
                outcomes.append((sent, answer.status_code, error.get("Code", "Success")))

    committed: list[float] = []

    def watcher() -> None:
        """Notes when the disable is visible in the database (never before its commit)."""
        with sqlite3.connect(target.server.db_url.removeprefix("sqlite:///")) as db:
            query = "SELECT status FROM api_keys WHERE secret_id = ?"
            while not stop.is_set():
                if db.execute(query, (key.secret_id,)).fetchone()[0] == "disabled":
                    committed.append(time.monotonic())
                    return
                time.sleep(0.01)

    threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(8)]
    threads.append(threading.Thread(target=watcher, daemon=True))
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(outcomes) >= 100, "calls to be flowing", timeout=30)
        disabling = time.monotonic()
        target.server.keys("disable", key.secret_id)
        wait_for(
            lambda: bool(committed) and any(s > committed[0] + 2 for s, _, _ in outcomes),
            "calls well after the disable",
            timeout=30,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    counts = Counter((status, code) for _, status, code in outcomes)
    assert set(counts) == {(200, "Success"), (200, "AuthFailure.SecretIdNotFound")}, counts
    assert all(code == "Success" for sent, _, code in outcomes if sent < disabling)
    # The credential cache keeps a key for 1 s: a little more, and no call gets through.
    late = [code for sent, _, code in outcomes if sent > committed[0] + 1.5]
    assert late and set(late) == {"AuthFailure.SecretIdNotFound"}
    last_success = max(sent for sent, _, code in outcomes if code == "Success")
    figures = {
        "calls": len(outcomes),
        "counts": {code: n for (_, code), n in counts.items()},
        "commit_seen_after_cli_start": round(committed[0] - disabling, 3),
        "last_success_sent_after_commit_seen": round(last_success - committed[0], 3),
    }
    print(json.dumps(figures))
