"""Hostile input to the API of one real `vulfix serve`, over real HTTP (issue 7).

Hypothesis sends junk methods, content types, bodies and headers, and correctly signed calls
of every registered action with generated parameters (JSON, multipart, flattened GET query
and form, TC3 and v1). Every answer must be HTTP 200, `Content-Type: application/json`, a
`{"Response": ...}` envelope with a lower-case UUID4 RequestId and, on error, a documented
code other than InternalError; afterwards the server still answers normally.
"""

from __future__ import annotations

import json
import operator
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from msgspec import inspect as mi

from tests.e2e.conftest import account_id_of, insert_bare_task
from tests.e2e.fleets import host, import_fleet, write_fleet
from tests.e2e.processes import ServerProcess
from tests.signed_requests import RawCall, Signer
from vulfix.cwp.error_codes import CODES
from vulfix.cwp.service import CwpDependencies, build_cwp_service
from vulfix.tcapi.errors import COMMON_MESSAGES

Headers = dict[str, str]
MIN_CASES = 10_000
SENT = [0]  # requests sent by this module, checked by the last test
HOST = "cwp.local.test"
MAX_URL = 60_000  # httpx refuses longer query strings (the server's limit is 32 KiB)
METHODS = ["GET", "POST"] * 3 + ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "PROPFIND"]
CONTENT_TYPES = [
    None, "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
    "application/x-www-form-urlencoded", "multipart/form-data",
    "multipart/form-data; boundary=", 'multipart/form-data; boundary="unterminated',
    "multipart/form-data; boundary=xyz", "text/plain", "application/octet-stream", "", ";",
    "application/json;;;", "*/*",
]  # fmt: skip
# The codes the CWP actions declare (spec §2) and the domain table maps to, and the common ones.
DOCUMENTED_CODES = frozenset(COMMON_MESSAGES) | frozenset(CODES.values()) | {
    "InvalidParameter.InvalidFormat", "InvalidParameter.MissingParameter",
    "InvalidParameter.ParsingError", "OperationDenied"}  # fmt: skip
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_BASE = settings(deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def _registered_actions() -> dict[str, type[msgspec.Struct]]:
    """Every action the server registers, with its request schema."""
    none = cast(Any, None)
    deps = CwpDependencies(none, none, none, none, none, offline_after=60.0, freezes=none)
    return {name: a.request_type for name, a in build_cwp_service(deps).actions.items()}


ACTIONS = _registered_actions()
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
# Any JSON value, kept shallow: generating deep trees costs more than sending them.
JSON = _SCALARS | st.lists(_SCALARS, max_size=3) | st.dictionaries(
    st.text(max_size=6), _SCALARS, max_size=2)  # fmt: skip


def _mostly(common: list[SearchStrategy[Any]], giant_alphabet: str) -> SearchStrategy[Any]:
    """One of the common strategies, or now and then a giant string (costly to send)."""
    sizes = st.sampled_from([300, 4400, 33_000])
    giant = st.builds(operator.mul, st.sampled_from(list(giant_alphabet)), sizes)
    return st.one_of(*common, *common, *common, giant)


KNOWN_IDS = st.sampled_from([1, 2, 501, 502, 503, 504, 9001, 9002])  # the fixture's task and fleet
INTS = _mostly([
    st.sampled_from([0, 1, 2, 501, 504, 9001, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1,
                     2**64, -1, 1.0, 1.5, -0.0, 1e19, 1e300, float("nan"), float("inf")]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=2**70).map(str),
    st.sampled_from(["", " 1", "0x10", "\u0661", "1e3", "+1", "00000000000000000000001"]),
], "19")  # fmt: skip
STRS = _mostly([
    st.sampled_from(["h1", "h2", "h3", "", "h1 ", "-x", "a/b", "é", "\x00"]),
    st.text("abh0123._:-", min_size=1, max_size=20),
    st.text(max_size=12),
], "aé中\x00")  # fmt: skip


def _typed(declared: mi.Type) -> SearchStrategy[Any]:
    if isinstance(declared, mi.UnionType):
        return st.one_of([_typed(t) for t in declared.types])
    if isinstance(declared, mi.IntType):  # half in range (reaching the actions), half hostile
        low = declared.ge or 0
        plausible = st.integers(low, min(declared.le or 2**63, low + 3)) | KNOWN_IDS
        return plausible | INTS
    if isinstance(declared, mi.StrType):
        return st.sampled_from(["h1", "h2", "h3"]) | STRS
    if isinstance(declared, mi.ListType):
        return st.lists(_value(declared.item_type), max_size=4)
    if isinstance(declared, mi.StructType):
        return _struct(declared.cls)
    return st.none()


def _value(declared: mi.Type) -> SearchStrategy[Any]:
    """Mostly of the declared type (in and out of range), sometimes any JSON value."""
    typed = _typed(declared)
    return st.one_of(typed, typed, typed, JSON)


def _struct(struct_type: type[msgspec.Struct]) -> SearchStrategy[dict[str, Any]]:
    """A parameter object for the schema: required fields usually there, unknown ones added."""
    info = mi.type_info(struct_type)
    assert isinstance(info, mi.StructType)
    required = {f.encode_name: _value(f.type) for f in info.fields if f.required}
    optional = {f.encode_name: _value(f.type) for f in info.fields if not f.required}
    names = st.sampled_from(["Foo", "fixId", "Region", "Action", "", "A.B"]) | st.text(max_size=5)
    unknown = st.dictionaries(names, JSON, max_size=2)
    return st.builds(
        lambda known, extra, drop: {k: v for k, v in {**extra, **known}.items() if k != drop},
        st.fixed_dictionaries(required, optional=optional),
        st.one_of(*[st.just({})] * 4, unknown),
        st.sampled_from([*[None] * 6, *required]),
    )


PARAMS = {name: _struct(request_type) for name, request_type in ACTIONS.items()}


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """`A.0.B` pairs the way the SDKs flatten a GET query or form (nulls dropped)."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in flatten(v, f"{prefix}.{k}" if prefix else k)]
    if isinstance(value, list):
        return [pair for index, v in enumerate(value) for pair in flatten(v, f"{prefix}.{index}")]
    return [] if value is None else [(prefix, str(value))]


def multipart_body(params: dict[str, Any]) -> tuple[str, bytes]:
    """One part per top-level parameter, lists and objects as JSON parts (the SDK's form)."""
    boundary = "hostile-7b0undary"
    parts = b""
    for name, value in params.items():
        typed = isinstance(value, list | dict)
        head = "Content-Type: application/json\r\n" if typed else ""
        data = json.dumps(value) if typed else str(value)
        parts += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                  f"{head}\r\n{data}\r\n").encode()  # fmt: skip
    return f"multipart/form-data; boundary={boundary}", parts + f"--{boundary}--\r\n".encode()


RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.builds(lambda value, cut: json.dumps(value).encode()[:cut], JSON, st.integers(0, 30)),
    st.integers(1, 5000).map(lambda depth: b'{"FixId":' + b"[" * depth + b"]" * depth + b"}"),
    st.sampled_from([b"\xff\xfe{}", b'{"FixId": "\xc3"}', b'{"FixId": 1', b"FixId=1&A.0=%ff",
        b'--xyz\r\nContent-Disposition: form-data; name="FixId"\r\n\r\n1\r\n--xyz--\r\n',
        b"--xyz\r\n\r\n", b"--\r\n", b'{"Quuids": "' + b"a" * 70_000 + b'"}']),
)  # fmt: skip
# Visible ASCII and obs-text: anything else (controls, DEL) is broken framing, refused by the
# HTTP server before the API sees it (see the raw-socket test).
HEADER_TEXT = st.text(
    st.characters(min_codepoint=33, max_codepoint=255, exclude_characters="\x7f"), max_size=30
)
TC3_AUTH = (
    "TC3-HMAC-SHA256 Credential=AKIDjunk/2026-01-01/cwp/tc3_request, "
    f"SignedHeaders=content-type;host, Signature={'ab' * 32}"
)
JUNK_HEADERS = st.builds(
    lambda known, other: {**other, **known},
    st.fixed_dictionaries({}, optional={
        "X-TC-Action": st.sampled_from(sorted(ACTIONS)) | HEADER_TEXT,
        "X-TC-Version": st.sampled_from(["2018-02-28", "2017-03-12"]) | HEADER_TEXT,
        "X-TC-Timestamp": st.sampled_from([str(int(time.time())), "-1", "9" * 40]) | HEADER_TEXT,
        "X-TC-Region": st.sampled_from(["ap-guangzhou", "x" * 70]) | HEADER_TEXT,
        "X-TC-Language": st.sampled_from(["en-US", "zh-CN"]) | HEADER_TEXT,
        "Authorization": st.integers(0, len(TC3_AUTH)).map(lambda n: TC3_AUTH[:n].strip())
        | HEADER_TEXT,
        "X-TC-Content-SHA256": st.just("UNSIGNED-PAYLOAD") | HEADER_TEXT,
    }),
    st.dictionaries(st.sampled_from(["X-A", "X-TC-Actions", "X-Tc-Action", "Accept", "Cookie",
        "Content-Encoding", "Expect", "X-TC-TraceId"]), HEADER_TEXT, max_size=3),
)  # fmt: skip
JUNK_QUERY = st.text(alphabet="AQFixdVul.0123=&%+fZ_-~!*'()", max_size=40)


@dataclass
class Api:
    server: ServerProcess
    http: httpx.Client
    signer: Signer
    fix_id: int

    def send(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> dict[str, Any]:
        """One request; checks the answer is a well-formed envelope and returns `Response`."""
        url = httpx.URL(f"http://{self.server.endpoint}").copy_with(raw_path=target.encode())
        raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        answer = self.http.request(method, url, headers=raw_headers, content=body)
        SENT[0] += 1
        assert answer.status_code == 200, (method, target, headers, answer.text[:500])
        assert answer.headers.get("content-type") == "application/json", answer.headers
        request_id = answer.headers.get("x-tc-requestid", "")
        assert UUID4.fullmatch(request_id), answer.headers
        if method == "HEAD":  # the GET-less method gets the headers of its refusal, no body
            assert answer.content == b"", answer.content
            return {}
        envelope = answer.json()
        assert list(envelope) == ["Response"], envelope
        response: dict[str, Any] = envelope["Response"]
        assert response.get("RequestId") == request_id, response
        error = response.get("Error")
        if error is not None:
            assert set(response) == {"Error", "RequestId"}, response
            assert set(error) == {"Code", "Message"} and isinstance(error["Message"], str)
            assert error["Code"] in DOCUMENTED_CODES, error
            assert not error["Code"].startswith("InternalError"), (method, target, body, error)
        return response

    def call(self, c: RawCall) -> dict[str, Any]:
        return self.send(c.method, c.path, c.headers, c.body)

    def signed(self, call: RawCall) -> dict[str, Any]:
        """A correctly signed call: it must pass authentication."""
        response = self.call(call)
        code = response.get("Error", {}).get("Code", "")
        assert not code.startswith("AuthFailure"), (call, response)
        return response

    def signer_for(self, action: str, **headers: str) -> Signer:
        s = self.signer
        return Signer(s.secret_id, s.secret_key, HOST, action=action, extra_headers=headers)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("hostile-api")
    server = ServerProcess(directory / "server", ("--rate-limit", "0")).start()
    try:
        key = server.create_key("acme")
        fleet = [host("h1", 1), host("h2", 2), host("h3", 3)]
        import_fleet(server, "acme", write_fleet(directory / "fleet.json", fleet, {
            501: ["h1", "h2"], 502: ["h2"], 503: ["h3"], 504: ["h1"]}))  # fmt: skip
        fix_id = insert_bare_task(server.db_url, account_id_of(server.db_url, "acme"))
        with httpx.Client(timeout=30) as http:
            yield Api(server, http, Signer(key.secret_id, key.secret_key, HOST), fix_id)
    finally:
        server.stop()


# One strategy per action, so that an example is one draw: (action, parameter object).
CALLS = st.one_of([st.tuples(st.just(name), PARAMS[name]) for name in sorted(ACTIONS)])
RAW_PAIRS = st.lists(st.tuples(
    st.sampled_from(["Quuids.0", "VulIds.x", "A..B", ".0", "FixId.0", "Quuids.01", "Quuids.-1",
                     "CreateVulFixTaskQuuids.0.Quuids.1", "Quuids.0.0", "Quuids.\u0663",
                     "A" + ".A" * 3000, "Quuids" + ".0" * 3000]),
    st.sampled_from(["", "h1", "1", "%", "\u4e2d"])), max_size=2)  # fmt: skip


@settings(_BASE, max_examples=1500)
@given(
    target=st.tuples(st.sampled_from(METHODS), JUNK_QUERY),
    content_types=st.tuples(st.sampled_from(CONTENT_TYPES), st.sampled_from(CONTENT_TYPES)),
    body=RAW_BODIES,
    headers=JUNK_HEADERS,
)
def test_junk_methods_content_types_bodies_and_headers(
    api: Api, target: list[str], content_types: list[str | None], body: bytes, headers: Headers
) -> None:
    method, query = target
    for content_type in content_types:  # the same junk under two content types
        typed = headers if content_type is None else {**headers, "Content-Type": content_type}
        api.send(method, "/?" + query if query else "/", typed, body)


@settings(_BASE, max_examples=1200)
@given(call=CALLS, ascii_only=st.booleans())
def test_signed_json_and_multipart_calls_of_every_action(
    api: Api, call: tuple[str, dict[str, Any]], ascii_only: bool
) -> None:
    action, params = call
    signer = api.signer_for(action)
    api.signed(signer.tc3_post(json.dumps(params, ensure_ascii=ascii_only).encode()))
    content_type, body = multipart_body(params)
    api.signed(signer.tc3_post(body, content_type=content_type))


@settings(_BASE, max_examples=1400)
@given(
    call=CALLS,
    raw_pairs=st.just([]) | st.just([]) | RAW_PAIRS,
    v1=st.tuples(st.sampled_from(["GET", "POST"]), st.sampled_from(["HmacSHA1", "HmacSHA256"])),
)
def test_signed_flattened_calls_of_every_action(
    api: Api, call: tuple[str, dict[str, Any]], raw_pairs: list[tuple[str, str]], v1: list[str]
) -> None:
    (action, params), (v1_method, signature) = call, v1
    pairs = flatten(params) + raw_pairs
    signer = api.signer_for(action)
    query = urlencode(pairs)
    if len(query) < MAX_URL:
        api.signed(signer.tc3_get(query))
    else:
        v1_method = "POST"
    form = "application/x-www-form-urlencoded"
    api.signed(signer.tc3_post(query.encode(), content_type=form))
    api.signed(signer.v1(dict(pairs), method=v1_method, signature_method=signature))


@settings(_BASE, max_examples=600)
@given(
    action=st.sampled_from([*sorted(ACTIONS), "describevulfixstatus", "Nope", "", "Créer"]),
    version=st.sampled_from(["2018-02-28", "2017-03-12", "", "x" * 300]),
    headers=st.fixed_dictionaries({}, optional={
        "X-TC-Region": st.sampled_from(["ap-guangzhou", "AP-GZ", "../etc", "a" * 100, "é", "-x"]),
        "X-TC-Language": st.sampled_from(["zh-CN", "en-US", "fr", "", "en"]),
        "X-TC-Token": st.sampled_from(["", "tok"]),
        "X-TC-TraceId": HEADER_TEXT, "X-TC-RequestClient": HEADER_TEXT, "X-Y": HEADER_TEXT,
        "X-TC-Content-SHA256": st.just("UNSIGNED-PAYLOAD") | HEADER_TEXT}),
)  # fmt: skip
def test_signed_calls_with_odd_common_headers(
    api: Api, action: str, version: str, headers: dict[str, str]
) -> None:
    signer = api.signer_for(action, **headers)
    signer.version = version
    response = api.call(signer.tc3_post(json.dumps({"FixId": api.fix_id}).encode()))
    code = response.get("Error", {}).get("Code", "")
    if headers.get("X-TC-Token"):
        assert code == "AuthFailure.TokenFailure", response
    elif headers.get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD":  # the body was signed
        assert code == "AuthFailure.SignatureFailure", response
    else:
        assert not code.startswith("AuthFailure"), response


@settings(_BASE, max_examples=300)
@given(
    cut=st.integers(min_value=0, max_value=400),
    junk=st.binary(max_size=12),
    mode=st.sampled_from(["truncate", "insert", "replace"]),
)
def test_broken_http_framing_is_refused_and_never_hangs(
    api: Api, cut: int, junk: bytes, mode: str
) -> None:
    call = api.signer_for("DescribeVulFixStatus").tc3_post(b'{"FixId": 1}')
    headers = {**call.headers, "Content-Length": str(len(call.body)), "Connection": "close"}
    head = "\r\n".join(["POST / HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""])
    raw = head.encode() + call.body
    cut %= len(raw) + 1
    tail = raw[cut + len(junk) :] if mode == "replace" else raw[cut:]
    raw = raw[:cut] if mode == "truncate" else raw[:cut] + junk + tail
    statuses = _raw_exchange(api.server.port, raw)
    SENT[0] += 1
    assert all(status < 500 for status in statuses), (raw, statuses)


def _raw_exchange(port: int, raw: bytes) -> list[int]:
    """Sends bytes, half-closes, and reads until the server closes: the statuses it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):  # a hang times out (socket.timeout fails the test)
            received += chunk
    return [int(line[9:12]) for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def test_oversized_requests_are_refused_with_the_size_code(api: Api) -> None:
    signer = api.signer_for("DescribeVulFixStatus")
    calls = [
        signer.tc3_post(b'{"FixId": 1, "Quuid": "' + b"a" * (10 * 1024 * 1024) + b'"}'),
        signer.tc3_get("FixId=1&Quuid=" + "a" * 33 * 1024),
        signer.v1({"FixId": "1", "Quuid": "a" * 1024 * 1024}),
    ]
    for call in calls:
        assert api.call(call)["Error"]["Code"] == "RequestSizeLimitExceeded"


def test_the_server_still_serves_after_every_case(api: Api) -> None:
    print(f"{SENT[0]} hostile requests answered")  # shown with -rP / -s
    assert SENT[0] >= MIN_CASES, f"only {SENT[0]} hostile requests were sent"
    started = time.monotonic()
    answer = api.signed(api.signer_for("DescribeVulFixStatus").tc3_post(
        json.dumps({"FixId": api.fix_id}).encode()))  # fmt: skip
    assert time.monotonic() - started < 5
    assert "Error" not in answer and answer["FixId"] == api.fix_id, answer
    assert answer["HostCnt"] == 0 and answer["VulFixList"] == [], answer
    log = Path(api.server.log_path).read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
