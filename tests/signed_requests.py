"""Builds raw TC3 / v1 requests for tests that must break one thing at a time.

Signatures come from `vulfix.tcapi.signing`, whose output the spec's vectors pin down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from vulfix.tcapi import signing


@dataclass
class RawCall:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Signer:
    secret_id: str
    secret_key: str
    host: str = "cwp.local.test"
    service: str = "cwp"
    action: str = "DescribeVulFixStatus"
    version: str = "2018-02-28"
    extra_headers: dict[str, str] = field(default_factory=dict)

    def tc3_post(
        self,
        body: bytes = b'{"FixId": 1}',
        *,
        timestamp: int | None = None,
        content_type: str = "application/json",
        scope_date: str | None = None,
        secret_key: str | None = None,
    ) -> RawCall:
        return self._tc3("POST", "", body, content_type, timestamp, scope_date, secret_key)

    def tc3_get(self, query: str = "FixId=1", *, timestamp: int | None = None) -> RawCall:
        return self._tc3(
            "GET", query, b"", "application/x-www-form-urlencoded", timestamp, None, None
        )

    def _tc3(
        self,
        method: str,
        query: str,
        body: bytes,
        content_type: str,
        timestamp: int | None,
        scope_date: str | None,
        secret_key: str | None,
    ) -> RawCall:
        ts = int(time.time()) if timestamp is None else timestamp
        date = scope_date or datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
        canonical = signing.tc3_canonical_request(
            method,
            query,
            [("content-type", content_type), ("host", self.host)],
            signing.sha256_hex(body),
        )
        string_to_sign = signing.tc3_string_to_sign(str(ts), date, self.service, canonical)
        signature = signing.tc3_signature(
            secret_key or self.secret_key, date, self.service, string_to_sign
        )
        headers = {
            "Host": self.host,
            "Content-Type": content_type,
            "X-TC-Action": self.action,
            "X-TC-Version": self.version,
            "X-TC-Timestamp": str(ts),
            "Authorization": (
                f"TC3-HMAC-SHA256 Credential={self.secret_id}/{date}/{self.service}/tc3_request, "
                f"SignedHeaders=content-type;host, Signature={signature}"
            ),
            **self.extra_headers,
        }
        path = "/?" + query if query else "/"
        return RawCall(method, path, headers, body)

    def v1(
        self,
        params: dict[str, str],
        *,
        method: str = "POST",
        signature_method: str = "HmacSHA256",
        timestamp: int | None = None,
        nonce: str = "12345",
    ) -> RawCall:
        common = {
            "Action": self.action,
            "Version": self.version,
            "Timestamp": str(int(time.time()) if timestamp is None else timestamp),
            "Nonce": nonce,
            "SecretId": self.secret_id,
            "SignatureMethod": signature_method,
        }
        all_params = {**params, **common}
        string_to_sign = signing.v1_string_to_sign(method, self.host, all_params.items())
        all_params["Signature"] = signing.v1_signature(
            self.secret_key, string_to_sign, signature_method
        )
        encoded = urlencode(all_params)
        if method == "GET":
            return RawCall("GET", "/?" + encoded, {"Host": self.host})
        headers = {"Host": self.host, "Content-Type": "application/x-www-form-urlencoded"}
        return RawCall("POST", "/", headers, encoded.encode())
