"""The ASGI entry: envelope, headers, error precedence, languages, failures that stay inside."""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.signed_requests import RawCall, Signer
from tests.tcapi.wire_app import READ_ONLY_ID, SECRET_ID, SECRET_KEY, build_app, call

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def signer(**kwargs: str) -> Signer:
    return Signer(SECRET_ID, SECRET_KEY, **kwargs)  # type: ignore[arg-type]


async def code_of(raw: RawCall, **app_options: object) -> str:
    response = await call(build_app(**app_options), raw)  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()["Response"]
    assert UUID4.fullmatch(body["RequestId"])
    return body["Error"]["Code"] if "Error" in body else "Success"


async def test_success_envelope_has_fields_request_id_and_headers() -> None:
    raw = signer(extra_headers={"X-TC-TraceId": "trace-123"}).tc3_post(b'{"FixId": "7"}')
    response = await call(build_app(), raw)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-tc-traceid"] == "trace-123"
    body = response.json()
    assert set(body) == {"Response"}
    assert body["Response"]["FixId"] == 7 and body["Response"]["Account"] == "alice"
    assert "Error" not in body["Response"]
    assert response.headers["x-tc-requestid"] == body["Response"]["RequestId"]


async def test_every_response_gets_a_fresh_request_id() -> None:
    app = build_app()
    ids = {(await call(app, signer().tc3_post())).json()["Response"]["RequestId"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_unsupported_protocol(method: str) -> None:
    assert await code_of(RawCall(method, "/", {"Host": "h"})) == "UnsupportedProtocol"


async def test_precedence_size_before_parse_before_auth() -> None:
    huge = b'{"FixId": 1, "Name": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert await code_of(RawCall("POST", "/", {"Content-Type": "application/json"}, huge)) == (
        "RequestSizeLimitExceeded"
    )
    assert await code_of(RawCall("POST", "/", {"Content-Type": "application/json"}, b"{nope")) == (
        "InvalidParameter"
    )
    assert await code_of(RawCall("POST", "/", {"Content-Type": "application/json"}, b"{}")) == (
        "AuthFailure.InvalidAuthorization"
    )


async def test_v1_body_limit_is_one_megabyte() -> None:
    raw = signer().v1({"Name": "x" * (1024 * 1024)})
    assert await code_of(raw) == "RequestSizeLimitExceeded"


async def test_get_query_limit_is_32_kib() -> None:
    raw = signer().tc3_get("Name=" + "x" * (32 * 1024))
    assert await code_of(raw) == "RequestSizeLimitExceeded"


async def test_auth_checks_in_order() -> None:
    good = signer().tc3_post()
    broken = dict(good.headers, Authorization="TC3-HMAC-SHA256 Credential=x")
    assert (
        await code_of(RawCall("POST", "/", broken, good.body)) == "AuthFailure.InvalidAuthorization"
    )
    no_ts = {k: v for k, v in good.headers.items() if k != "X-TC-Timestamp"}
    assert await code_of(RawCall("POST", "/", no_ts, good.body)) == "MissingParameter"
    old = signer().tc3_post(timestamp=int(time.time()) - 301)
    assert await code_of(old) == "AuthFailure.SignatureExpire"
    unknown = Signer("AKIDunknown", SECRET_KEY).tc3_post(timestamp=int(time.time()) - 301)
    assert await code_of(unknown) == "AuthFailure.SignatureExpire"  # expiry is checked first
    assert (
        await code_of(Signer("AKIDunknown", SECRET_KEY).tc3_post())
        == "AuthFailure.SecretIdNotFound"
    )
    token = signer(extra_headers={"X-TC-Token": "t"}).tc3_post(secret_key="wrong")
    assert await code_of(token) == "AuthFailure.TokenFailure"
    assert await code_of(signer().tc3_post(secret_key="wrong")) == "AuthFailure.SignatureFailure"


async def test_timestamp_window_is_300_seconds_either_way() -> None:
    now = int(time.time())
    assert await code_of(signer().tc3_post(timestamp=now - 299)) == "Success"
    assert await code_of(signer().tc3_post(timestamp=now + 299)) == "Success"
    assert await code_of(signer().tc3_post(timestamp=now + 301)) == "AuthFailure.SignatureExpire"


async def test_scope_date_must_be_the_timestamps_utc_date() -> None:
    assert (
        await code_of(signer().tc3_post(scope_date="2020-01-01")) == "AuthFailure.SignatureFailure"
    )


async def test_service_comes_from_the_credential_scope() -> None:
    # The Node SDK signs with the endpoint's first DNS label as the service.
    assert await code_of(signer(service="127").tc3_post()) == "Success"


async def test_content_type_with_parameters_is_signed_verbatim() -> None:
    raw = signer().tc3_post(content_type="application/json; charset=utf-8")
    assert await code_of(raw) == "Success"


async def test_host_with_port_stripped_is_accepted() -> None:
    raw = signer(host="cwp.local.test").tc3_post()
    raw.headers["Host"] = "cwp.local.test:8443"
    assert await code_of(raw) == "Success"


async def test_tc3_get_and_v1_both_methods_succeed() -> None:
    assert await code_of(signer().tc3_get("FixId=3&Name=a+b")) == "Success"
    for method in ("GET", "POST"):
        for signature_method in ("HmacSHA1", "HmacSHA256"):
            raw = signer().v1({"FixId": "3"}, method=method, signature_method=signature_method)
            assert await code_of(raw) == "Success", (method, signature_method)


async def test_v1_node_nonce_zero_is_accepted_and_missing_nonce_is_missing_parameter() -> None:
    assert await code_of(signer().v1({}, nonce="0")) == "Success"
    assert await code_of(signer().v1({}, nonce="")) == "MissingParameter"


async def test_action_and_version_checks_follow_auth() -> None:
    assert await code_of(signer(action="NoSuchAction").tc3_post()) == "InvalidAction"
    assert await code_of(signer(version="2017-01-01").tc3_post()) == "NoSuchVersion"
    assert await code_of(signer(action="").tc3_post()) == "MissingParameter"
    region = signer(extra_headers={"X-TC-Region": "Not A Region"}).tc3_post()
    assert await code_of(region) == "UnsupportedRegion"
    listed = signer(extra_headers={"X-TC-Region": "ap-beijing"}).tc3_post()
    assert await code_of(listed, regions=frozenset({"ap-guangzhou"})) == "UnsupportedRegion"


async def test_throttle_comes_before_parameter_checks() -> None:
    app = build_app(rate_limit=2)
    codes = [
        (await call(app, signer().tc3_post(b'{"Unknown": 1}'))).json()["Response"]["Error"]["Code"]
        for _ in range(3)
    ]
    assert codes == ["UnknownParameter", "UnknownParameter", "RequestLimitExceeded"]


async def test_read_only_key_cannot_call_a_mutating_action() -> None:
    raw = Signer(READ_ONLY_ID, SECRET_KEY, action="CreateVulFix").tc3_post()
    assert await code_of(raw) == "UnauthorizedOperation"
    assert await code_of(Signer(READ_ONLY_ID, SECRET_KEY).tc3_post()) == "Success"


async def test_schema_errors_and_business_errors_pass_through() -> None:
    assert await code_of(signer().tc3_post(b'{"FixId": "x"}')) == "InvalidParameter"
    assert await code_of(signer().tc3_post(b'{"FixId": -1}')) == "InvalidParameterValue"
    assert await code_of(signer().tc3_post(b'{"Name": "business"}')) == "InvalidParameterValue"


async def test_unexpected_exception_is_internal_error_logged_with_its_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = await call(build_app(), signer().tc3_post(b'{"Name": "boom"}'))
    body = response.json()["Response"]
    assert body["Error"]["Code"] == "InternalError"
    assert "Traceback" not in response.text and "unexpected failure" not in response.text
    logged = [r for r in caplog.records if body["RequestId"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None


async def test_language_selects_the_message() -> None:
    raw = Signer("AKIDunknown", SECRET_KEY, extra_headers={"X-TC-Language": "en-US"}).tc3_post()
    english = (await call(build_app(), raw)).json()["Response"]["Error"]["Message"]
    raw = Signer("AKIDunknown", SECRET_KEY, extra_headers={"X-TC-Language": "zh-CN"}).tc3_post()
    chinese = (await call(build_app(), raw)).json()["Response"]["Error"]["Message"]
    assert english.isascii() and "SecretId" in english
    assert not chinese.isascii()


async def test_unsupported_content_type_is_refused() -> None:
    raw = signer().tc3_post(content_type="text/xml")
    assert await code_of(raw) == "UnsupportedProtocol"


async def test_multipart_params_are_decoded_and_malformed_multipart_is_invalid_request() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="FixId"\r\n\r\n5\r\n'
        b'--B\r\nContent-Disposition: form-data; name="Name"\r\n'
        b"Content-Type: application/json\r\n\r\n"
        b'"n"\r\n--B--\r\n'
    )
    raw = signer().tc3_post(body, content_type="multipart/form-data; boundary=B")
    response = await call(build_app(), raw)
    assert response.json()["Response"]["FixId"] == 5
    bad = signer().tc3_post(b"garbage", content_type="multipart/form-data; boundary=B")
    assert await code_of(bad) == "InvalidRequest"


async def test_one_app_remembers_only_what_it_resolved() -> None:
    """The action lookup is remembered per (action, version, region) as sent: a good call
    does not make a later bad version, action or region pass on the same app."""
    app = build_app(regions=frozenset({"ap-guangzhou"}))

    async def code(**changes: str) -> str:
        headers = {f"X-TC-{name}": value for name, value in changes.items()}
        response = await call(app, signer(extra_headers=headers).tc3_post())
        body = response.json()["Response"]
        return body["Error"]["Code"] if "Error" in body else "Success"

    assert await code(Region="ap-guangzhou") == "Success"
    assert await code(Region="ap-guangzhou") == "Success"
    assert await code(Region="ap-guangzhou", Version="2017-01-01") == "NoSuchVersion"
    assert await code(Region="ap-beijing") == "UnsupportedRegion"
    assert await code(Region="ap-guangzhou", Action="DescribeNothing") == "InvalidAction"
    assert await code(Region=" ap-guangzhou ") == "Success"  # trimmed, as before


async def test_remembered_actions_are_bounded() -> None:
    app = build_app()
    for index in range(300):
        raw = signer(extra_headers={"X-TC-Region": f"ap-r{index}"}).tc3_post()
        assert (await call(app, raw)).json()["Response"]["FixId"] == 1
    assert len(app._resolved) <= 256


async def answer_in_chunks(raw: RawCall, chunks: list[bytes]) -> dict[str, object]:
    """Drives the app as an ASGI server would deliver a body in several messages."""
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": raw.method, "path": "/", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in raw.headers.items()],
        "client": ("127.0.0.1", 5000),
    }  # fmt: skip
    await build_app()(scope, receive, send)  # type: ignore[arg-type]
    body = sent[1]["body"]
    assert isinstance(body, bytes)
    answer: dict[str, object] = json.loads(body)["Response"]
    return answer


async def test_a_body_in_several_messages_is_read_whole() -> None:
    raw = signer().tc3_post(b'{"FixId": 12345}')
    answer = await answer_in_chunks(raw, [raw.body[:3], raw.body[3:9], raw.body[9:], b""])
    assert answer["FixId"] == 12345


async def test_a_body_passing_the_limit_in_pieces_is_refused() -> None:
    raw = signer().tc3_post(b'{"FixId": 1}')
    piece = b" " * (1024 * 1024)
    answer = await answer_in_chunks(raw, [raw.body[:-1], *[piece] * 11, b"}"])
    error = answer["Error"]
    assert isinstance(error, dict) and error["Code"] == "RequestSizeLimitExceeded"
