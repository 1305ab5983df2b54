"""Official `tencentcloud-sdk-python` clients configured for a local vulfix server."""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tencentcloud.common import abstract_client, credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cwp.v20180228 import cwp_client

from tests.e2e.processes import ApiKey


@dataclass(frozen=True)
class Mode:
    """One way the SDK can call: HTTP method, signature method, payload signing, language."""

    name: str
    method: str = "POST"
    sign: str = "TC3-HMAC-SHA256"
    unsigned_payload: bool = False

    @property
    def is_v1(self) -> bool:
        return self.sign != "TC3-HMAC-SHA256"


MODES = [
    Mode("tc3-post"),
    Mode("tc3-get", method="GET"),
    Mode("hmacsha1-post", sign="HmacSHA1"),
    Mode("hmacsha256-get", method="GET", sign="HmacSHA256"),
    Mode("unsigned-payload", unsigned_payload=True),
]


def client(
    endpoint: str,
    key: ApiKey,
    mode: Mode = MODES[0],
    *,
    language: str = "zh-CN",
    secret_key: str | None = None,
    https_ca: str | None = None,
) -> cwp_client.CwpClient:
    http = HttpProfile(
        endpoint=endpoint,
        protocol="https" if https_ca else "http",
        reqMethod=mode.method,
        reqTimeout=30,
        certification=https_ca,
    )
    profile = ClientProfile(signMethod=mode.sign, httpProfile=http, language=language)
    profile.unsignedPayload = mode.unsigned_payload
    cred = credential.Credential(key.secret_id, secret_key or key.secret_key)
    return cwp_client.CwpClient(cred, "ap-guangzhou", profile)


@contextmanager
def clock_offset(seconds: float) -> Iterator[None]:
    """Makes the SDK stamp its requests `seconds` away from the real time."""
    real = abstract_client.time
    abstract_client.time = types.SimpleNamespace(
        time=lambda: time.time() + seconds, sleep=time.sleep
    )  # type: ignore[assignment]
    try:
        yield
    finally:
        abstract_client.time = real


def common_client(endpoint: str, key: ApiKey, *, language: str = "zh-CN") -> CommonClient:
    """The SDK's generic client for cwp over plain HTTP: any action, extensions included."""
    profile = ClientProfile(
        httpProfile=HttpProfile(endpoint=endpoint, protocol="http"), language=language
    )
    secret = credential.Credential(key.secret_id, key.secret_key)
    return CommonClient("cwp", "2018-02-28", secret, "ap-guangzhou", profile)
