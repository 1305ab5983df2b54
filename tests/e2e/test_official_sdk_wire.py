"""The wire protocol as the official Python SDK sees it, in every signing mode it has."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.retry import StandardRetryer
from tencentcloud.cwp.v20180228 import cwp_client, models

from tests.e2e.conftest import account_id_of, insert_bare_task
from tests.e2e.processes import ApiKey, ServerProcess
from tests.e2e.sdk_clients import MODES, Mode, client, clock_offset

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
INTL_SDK = Path(sys.executable).parent.parent / "intl-en-sdk"
MODE_IDS = [mode.name for mode in MODES]


def error_of(call: object) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as caught:
        call()  # type: ignore[operator]
    assert caught.value.get_request_id() and UUID4.fullmatch(caught.value.get_request_id())
    return caught.value


def status_request(**params: object) -> models.DescribeVulFixStatusRequest:
    request = models.DescribeVulFixStatusRequest()
    request.from_json_string(json.dumps(params))
    return request


@pytest.fixture(scope="module")
def key(server: ServerProcess) -> ApiKey:
    return server.create_key("wire-tests")


def oversize_params(mode: Mode) -> dict[str, object]:
    # GET queries stop at 32 KiB, v1 bodies at 1 MiB, TC3 bodies at 10 MiB.
    size = (
        40 * 1024
        if mode.method == "GET"
        else (1024 * 1024 + 10 if mode.is_v1 else 10 * 1024 * 1024 + 10)
    )
    return {"FixId": 1, "Padding": "x" * size}


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_well_formed_call_answers_with_every_field_typed(
    server: ServerProcess, key: ApiKey, mode: Mode
) -> None:
    fix_id = insert_bare_task(server.db_url, account_id_of(server.db_url, key.account))
    response = client(server.endpoint, key, mode).DescribeVulFixStatus(status_request(FixId=fix_id))
    assert response.FixId == fix_id
    assert UUID4.fullmatch(response.RequestId)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", response.FixStartTime)
    for name in ("HostCnt", "FixSuccessCnt", "FixFailCnt", "SnapshotFailCnt", "SnapshotProgress",
                 "FixProgress", "RemainingTime", "IsRetrySnapshot", "IsAllowRetry"):  # fmt: skip
        assert isinstance(getattr(response, name), int), name
    assert response.SnapshotList == [] and response.VulFixList == []


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_digit_string_fix_id_as_in_the_original_example(
    server: ServerProcess, key: ApiKey, mode: Mode
) -> None:
    fix_id = insert_bare_task(server.db_url, account_id_of(server.db_url, key.account))
    body = json.loads(
        client(server.endpoint, key, mode).call("DescribeVulFixStatus", {"FixId": str(fix_id)})
    )
    assert body["Response"]["FixId"] == fix_id


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_unknown_fix_id_and_missing_lookup(server: ServerProcess, key: ApiKey, mode: Mode) -> None:
    cwp = client(server.endpoint, key, mode)
    assert error_of(lambda: cwp.DescribeVulFixStatus(status_request(FixId=999999))).get_code() == (
        "InvalidParameterValue"
    )
    assert (
        error_of(lambda: cwp.DescribeVulFixStatus(status_request())).get_code()
        == "MissingParameter"
    )


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_authentication_failures(server: ServerProcess, key: ApiKey, mode: Mode) -> None:
    request = status_request(FixId=987654321)
    wrong = client(server.endpoint, key, mode, secret_key="not-the-secret")
    assert (
        error_of(lambda: wrong.DescribeVulFixStatus(request)).get_code()
        == "AuthFailure.SignatureFailure"
    )
    unknown = client(server.endpoint, ApiKey("x", 0, "AKIDdoesnotexist", "s"), mode)
    assert (
        error_of(lambda: unknown.DescribeVulFixStatus(request)).get_code()
        == "AuthFailure.SecretIdNotFound"
    )
    cwp = client(server.endpoint, key, mode)
    with clock_offset(301):
        assert (
            error_of(lambda: cwp.DescribeVulFixStatus(request)).get_code()
            == "AuthFailure.SignatureExpire"
        )
    with clock_offset(-301):
        assert (
            error_of(lambda: cwp.DescribeVulFixStatus(request)).get_code()
            == "AuthFailure.SignatureExpire"
        )
    with clock_offset(
        299
    ):  # inside the window: authenticated, then the (missing) task is looked up
        assert (
            error_of(lambda: cwp.DescribeVulFixStatus(request)).get_code()
            == "InvalidParameterValue"
        )


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_disabled_and_deleted_keys_are_unknown(server: ServerProcess, mode: Mode) -> None:
    disabled = server.create_key(f"disabled-{mode.name}")
    server.keys("disable", disabled.secret_id)
    cwp = client(server.endpoint, disabled, mode)
    assert error_of(lambda: cwp.DescribeVulFixStatus(status_request(FixId=1))).get_code() == (
        "AuthFailure.SecretIdNotFound"
    )
    deleted = server.create_key(f"deleted-{mode.name}")
    server.keys("delete", deleted.secret_id)
    cwp = client(server.endpoint, deleted, mode)
    assert error_of(lambda: cwp.DescribeVulFixStatus(status_request(FixId=1))).get_code() == (
        "AuthFailure.SecretIdNotFound"
    )


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_action_version_and_parameter_errors(
    server: ServerProcess, key: ApiKey, mode: Mode
) -> None:
    cwp = client(server.endpoint, key, mode)
    assert error_of(lambda: cwp.call("NoSuchAction", {})).get_code() == "InvalidAction"
    assert error_of(
        lambda: cwp.call("DescribeVulFixStatus", {"FixId": 1, "Bogus": 2})
    ).get_code() == ("UnknownParameter")
    assert (
        error_of(lambda: cwp.call("DescribeVulFixStatus", {"FixId": "abc"})).get_code()
        == "InvalidParameter"
    )
    assert error_of(lambda: cwp.call("DescribeVulFixStatus", oversize_params(mode))).get_code() == (
        "RequestSizeLimitExceeded"
    )
    versioned = client(server.endpoint, key, mode)
    versioned._apiVersion = "2017-03-12"
    assert (
        error_of(lambda: versioned.call("DescribeVulFixStatus", {"FixId": 1})).get_code()
        == "NoSuchVersion"
    )


@pytest.mark.parametrize("mode", MODES, ids=MODE_IDS)
def test_the_21st_call_within_one_second_is_refused(
    limited_server: ServerProcess, mode: Mode
) -> None:
    key = limited_server.create_key(f"burst-{mode.name}")
    cwp = client(limited_server.endpoint, key, mode)
    codes = []
    for _ in range(21):
        try:
            cwp.DescribeVulFixStatus(status_request(FixId=1))
            codes.append("Success")
        except TencentCloudSDKException as error:
            codes.append(error.get_code())
    assert codes == ["InvalidParameterValue"] * 20 + ["RequestLimitExceeded"]


def test_messages_follow_the_client_language(server: ServerProcess, key: ApiKey) -> None:
    request = status_request(FixId=424242)
    chinese = error_of(
        lambda: client(server.endpoint, key).DescribeVulFixStatus(request)
    ).get_message()
    english = error_of(
        lambda: client(server.endpoint, key, language="en-US").DescribeVulFixStatus(request)
    ).get_message()
    assert "424242" in english and english.isascii()
    assert not chinese.isascii()


def run_intl(
    server: ServerProcess, key: ApiKey, calls: list[dict[str, object]]
) -> list[dict[str, object]]:
    job = {
        "endpoint": server.endpoint,
        "secret_id": key.secret_id,
        "secret_key": key.secret_key,
        "calls": calls,
    }
    script = Path(__file__).with_name("intl_en_client.py")
    result = subprocess.run(
        [sys.executable, str(script)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(INTL_SDK)},
        check=True,
    )
    results: list[dict[str, object]] = json.loads(result.stdout)
    return results


def test_intl_en_sdk_gets_english_messages_and_the_same_codes(
    server: ServerProcess, key: ApiKey
) -> None:
    assert (INTL_SDK / "tencentcloud").is_dir(), (
        "make test installs the intl-en SDK beside the venv"
    )
    fix_id = insert_bare_task(server.db_url, account_id_of(server.db_url, key.account))
    disabled = server.create_key("intl-disabled")
    server.keys("disable", disabled.secret_id)
    base = {"action": "DescribeVulFixStatus", "params": {"FixId": 987654321}}
    calls: list[dict[str, object]] = [
        {"action": "DescribeVulFixStatus", "params": {"FixId": fix_id}},
        {**base, "secret_key": "wrong"},
        {**base, "offset": 301},
        {**base, "offset": 299},
        {**base, "secret_id": "AKIDdoesnotexist"},
        {**base, "secret_id": disabled.secret_id, "secret_key": disabled.secret_key},
        {"action": "NoSuchAction", "params": {}},
        {**base, "version": "2017-03-12"},
        {"action": "DescribeVulFixStatus", "params": {"FixId": 1, "Bogus": 1}},
        {"action": "DescribeVulFixStatus", "params": {"FixId": "abc"}},
        {
            "action": "DescribeVulFixStatus",
            "params": {"FixId": 1, "Padding": "x" * (10 * 1024 * 1024 + 1)},
        },
        {**base, "method": "GET", "sign": "HmacSHA256"},
    ]
    results = run_intl(server, key, calls)
    assert results[0]["response"]["FixId"] == fix_id  # type: ignore[index]
    assert results[0]["language"] == "en-US"
    assert [r.get("code") for r in results[1:]] == [
        "AuthFailure.SignatureFailure",
        "AuthFailure.SignatureExpire",
        "InvalidParameterValue",
        "AuthFailure.SecretIdNotFound",
        "AuthFailure.SecretIdNotFound",
        "InvalidAction",
        "NoSuchVersion",
        "UnknownParameter",
        "InvalidParameter",
        "RequestSizeLimitExceeded",
        "InvalidParameterValue",
    ]
    for result in results[1:]:
        assert str(result["message"]).isascii(), result
        assert UUID4.fullmatch(str(result["request_id"]))


def test_the_sdk_retryer_backs_off_on_request_limit_exceeded_and_succeeds(
    limited_server: ServerProcess,
) -> None:
    import logging

    key = limited_server.create_key("retrying")
    burst = client(limited_server.endpoint, key)
    for _ in range(20):
        with pytest.raises(TencentCloudSDKException):
            burst.DescribeVulFixStatus(status_request(FixId=987654))
    attempts: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            attempts.append(record.getMessage())

    logger = logging.getLogger("vulfix.tests.retryer")
    logger.addHandler(Recorder())
    logger.setLevel(logging.DEBUG)
    retryer = StandardRetryer(max_attempts=3, backoff_fn=lambda n: 1.05, logger=logger)
    profile = ClientProfile(
        httpProfile=HttpProfile(endpoint=limited_server.endpoint, protocol="http")
    )
    profile.retryer = retryer
    patient = cwp_client.CwpClient(
        credential.Credential(key.secret_id, key.secret_key), "ap-guangzhou", profile
    )
    # The first attempt lands inside the same second and is refused; the retry gets through to
    # the business answer (no such task), which the retryer does not retry.
    error = error_of(lambda: patient.DescribeVulFixStatus(status_request(FixId=987654)))
    assert error.get_code() == "InvalidParameterValue"
    assert any("RequestLimitExceeded" in line for line in attempts), attempts
