"""Malformed, oversized or misdirected agent reports against a real `vulfix serve` (issue 7).

Two hosts enrol and each leases a real job of one fix task. Every hostile report (bad JSON,
wrong types, unknown fields, absurd values, bodies over the limit, another host's job, ids
that name nothing, bad tokens) is answered with a 4xx and a JSON `AgentError`, and stores
nothing: the job, record and snapshot rows and the API's view of the task stay as they were.
A valid report is then applied as usual.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.e2e.fleets import enroll_token, host, import_fleet, write_fleet
from tests.e2e.processes import ServerProcess
from tests.signed_requests import Signer

REPORT_LIMIT = 256 * 1024
VALID = {"outcome": "success", "reason": "", "exit_code": 0, "output_tail": "ok",
         "provider_ref": "snap-1", "duration_seconds": 1.5}  # fmt: skip
STORED_TABLES = ("jobs", "snapshot_records", "fix_records", "machine_snapshots", "fix_tasks")
HYPOTHESIS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Site:
    server: ServerProcess
    http: httpx.Client
    signer: Signer
    fix_id: int
    tokens: dict[str, str]  # quuid -> host token
    jobs: dict[str, int]  # quuid -> the job leased to it

    def api(self, action: str, **params: Any) -> dict[str, Any]:
        signer = Signer(self.signer.secret_id, self.signer.secret_key, action=action)
        call = signer.tc3_post(json.dumps(params).encode())
        answer = self.http.post("/", headers=call.headers, content=call.body)
        response: dict[str, Any] = answer.json()["Response"]
        response.pop("RequestId")
        return response

    def report(self, quuid: str, job: str, body: bytes, token: str | None = None) -> httpx.Response:
        token = self.tokens[quuid] if token is None else token
        return self.http.post(
            f"/agent/v1/jobs/{job}/result",
            content=body,
            headers={
                "authorization": f"Bearer {token}".strip(),
                "content-type": "application/json",
            },
        )

    def stored(self) -> dict[str, Any]:
        """Every row a report could change, and what the API shows of the task."""
        path = self.server.db_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            rows = {
                t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in STORED_TABLES
            }
        status = self.api("DescribeVulFixStatus", FixId=self.fix_id)
        status.pop("RemainingTime")  # an estimate from the clock, not stored
        logs = [self.api("DescribeVulFixHostLog", FixId=self.fix_id, Quuid=q, VulId=501)
                for q in self.jobs]  # fmt: skip
        return {"rows": rows, "status": status, "logs": logs}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("hostile-agent")
    server = ServerProcess(directory / "server", ("--rate-limit", "0")).start()
    try:
        key = server.create_key("acme")
        fleet = write_fleet(directory / "fleet.json", [host("a1", 1), host("a2", 2)],
                            {501: ["a1", "a2"]})  # fmt: skip
        import_fleet(server, "acme", fleet)
        token = enroll_token(server, "acme")
        with httpx.Client(base_url=f"http://{server.endpoint}", timeout=30) as http:
            tokens = {q: _enroll(http, token, q) for q in ("a1", "a2")}
            signer = Signer(key.secret_id, key.secret_key)
            site = Site(server, http, signer, 0, tokens, {})
            created = site.api(
                "CreateVulFix",
                SaveDays=1,
                CreateVulFixTaskQuuids=[{"Quuids": ["a1", "a2"], "VulId": 501}],
            )
            site.fix_id = created["FixId"]  # fmt: skip
            for quuid, host_token in tokens.items():
                leased = http.get(
                    "/agent/v1/jobs", headers={"authorization": f"Bearer {host_token}"}
                )
                assert leased.status_code == 200, leased.text
                site.jobs[quuid] = leased.json()["job_id"]
            yield site
    finally:
        server.stop()


def _enroll(http: httpx.Client, token: str, quuid: str) -> str:
    enrolled = http.post("/agent/v1/enroll", json={
        "enroll_token": token, "quuid": quuid, "host_name": f"{quuid}-host",
        "host_ip": "10.9.0.1", "os_family": "debian", "snapshot_supported": True})  # fmt: skip
    assert enrolled.status_code == 200, enrolled.text
    host_token: str = enrolled.json()["host_token"]
    return host_token


@pytest.fixture(scope="module")
def before(site: Site) -> dict[str, Any]:
    return site.stored()


def _assert_refused(answer: httpx.Response, *statuses: int) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    assert not statuses or answer.status_code in statuses, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/json", answer.headers
    error = answer.json()
    assert set(error) == {"error", "message"} and all(isinstance(v, str) for v in error.values())


def _with(field: str, value: Any) -> bytes:
    return json.dumps({**VALID, field: value}).encode()


def _without(field: str) -> bytes:
    return json.dumps({k: v for k, v in VALID.items() if k != field}).encode()


NOT_STR = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.lists(st.integers(), max_size=2)
)
# Each strategy gives a body that is certainly invalid, one defect at a time.
BAD_BODIES = st.one_of(
    st.binary(max_size=40).filter(lambda b: b.strip()[:1] not in (b"{", b"[")),
    st.builds(lambda cut: json.dumps(VALID).encode()[:cut], st.integers(0, 100)),
    st.sampled_from([b"", b"null", b"[]", b'"success"', b"\xff\xfe", b"{" * 5000,
                     b'{"outcome":' + b"[" * 3000 + b"]" * 3000 + b"}"]),
    st.text("abcz_", min_size=1, max_size=12).filter(lambda k: k not in VALID).map(
        lambda k: _with(k, 1)),
    st.text(max_size=12).filter(lambda o: o not in ("success", "failure", "unsupported")).map(
        lambda o: _with("outcome", o)),
    (NOT_STR | st.dictionaries(st.text(max_size=3), st.integers(), max_size=1)).map(
        lambda o: _with("outcome", o)),
    st.sampled_from(["reason", "output_tail", "provider_ref"]).flatmap(
        lambda f: NOT_STR.filter(lambda v: v is not None).map(lambda v: _with(f, v))),
    (st.integers(max_value=-(2**31) - 1) | st.integers(min_value=2**31) | st.sampled_from(
        ["0", 1.5, True, [], {}])).map(lambda v: _with("exit_code", v)),
    (st.floats(max_value=-1e-9) | st.sampled_from(["1", None, True, [], 1e400])).map(
        lambda v: _with("duration_seconds", v)),
    st.integers(513, 4000).map(lambda n: _with("provider_ref", "r" * n)),
    st.just(_without("outcome")),
)  # fmt: skip


@settings(HYPOTHESIS, max_examples=400)
@given(body=BAD_BODIES, quuid=st.sampled_from(["a1", "a2"]))
def test_malformed_reports_are_refused_and_store_nothing(
    site: Site, before: dict[str, Any], body: bytes, quuid: str
) -> None:
    _assert_refused(site.report(quuid, str(site.jobs[quuid]), body), 400, 422)


@settings(HYPOTHESIS, max_examples=150)
@given(job=st.one_of(
    st.sampled_from(["0", "-1", "00", "1e3", "0x1", "%20", str(2**63), "9" * 40, "١"]),
    st.integers(10_000, 2**63 - 1).map(str),
    st.text("abc0123456789-+.", min_size=1, max_size=25).filter(lambda j: j not in ("..", ".")),
))  # fmt: skip
def test_reports_for_jobs_that_are_not_the_hosts_are_refused(
    site: Site, before: dict[str, Any], job: str
) -> None:
    if job.isdigit() and int(job) in site.jobs.values():
        job = str(2**62)
    _assert_refused(site.report("a1", job, json.dumps(VALID).encode()), 404)


def test_another_hosts_job_and_bad_tokens_are_refused(site: Site, before: dict[str, Any]) -> None:
    valid = json.dumps(VALID).encode()
    _assert_refused(site.report("a1", str(site.jobs["a2"]), valid), 404)
    _assert_refused(site.report("a2", str(site.jobs["a1"]), valid), 404)
    for token in ("", "junk", site.tokens["a1"][:-1], site.tokens["a1"] + "x", "x" * 5000):
        _assert_refused(site.report("a1", str(site.jobs["a1"]), valid, token=token), 401)


def test_oversized_reports_are_refused_with_413(site: Site, before: dict[str, Any]) -> None:
    job = str(site.jobs["a1"])
    for size in (REPORT_LIMIT, 2 * REPORT_LIMIT, 5 * 1024 * 1024):
        _assert_refused(site.report("a1", job, _with("output_tail", "x" * size)), 413)
    # Declared too large and never sent: refused from the header alone, without a hang.
    head = (f"POST /agent/v1/jobs/{job}/result HTTP/1.1\r\nHost: x\r\nContent-Length: {2**40}\r\n"
            f"Authorization: Bearer {site.tokens['a1']}\r\n\r\n{{}}")  # fmt: skip
    with socket.create_connection(("127.0.0.1", site.server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"}" not in answer and (chunk := sock.recv(65536)):  # headers, then the body
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"body_too_large"' in answer, answer


def test_nothing_was_stored_then_a_valid_report_is_applied(
    site: Site, before: dict[str, Any]
) -> None:
    after = site.stored()
    assert after == before
    path = site.server.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        states = db.execute("SELECT DISTINCT state, outcome FROM jobs").fetchall()
    assert states == [("leased", "")], states  # both jobs still leased, no outcome
    job = site.jobs["a1"]
    applied = site.report("a1", str(job), json.dumps(VALID).encode())
    assert applied.status_code == 200 and applied.json()["applied"] is True, applied.text
    resent = site.report("a1", str(job), json.dumps(VALID).encode())
    assert resent.status_code == 200 and resent.json()["applied"] is False, resent.text
    changed = site.stored()
    assert changed["rows"]["jobs"] != before["rows"]["jobs"]
    snapshots = {s["Quuid"]: s for s in changed["status"]["SnapshotList"]}
    assert snapshots["a1"]["Status"] != {s["Quuid"]: s for s in before["status"][
        "SnapshotList"]}["a1"]["Status"]  # fmt: skip
    log = Path(site.server.log_path).read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
