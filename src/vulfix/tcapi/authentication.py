"""Signature verification for TC3-HMAC-SHA256 and v1, in the vendor's order of checks.

Order (each failing check answers with its code): malformed Authorization, missing common
parameter, timestamp outside the window, unknown key, token, signature. The signed host is
tried against several candidates because clients disagree about it (port kept or stripped,
`http://` prefix from tccli, a proxy's public name).
"""

from __future__ import annotations

import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from vulfix.tcapi import signing
from vulfix.tcapi.credentials import Credential, CredentialSource
from vulfix.tcapi.errors import ApiError
from vulfix.tcapi.raw_request import RawRequest

SKEW_SECONDS = 300
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HEX_DIGITS = "0123456789abcdef"
_PORT = re.compile(r":\d+$")
_UNSIGNED_PAYLOAD = signing.UNSIGNED_PAYLOAD.encode()
_SDK_SIGNED_HEADERS = ("content-type", "host")
_SDK_SIGNED_NAMES = "content-type;host"


class InvalidAuthorization(ApiError):
    code = "AuthFailure.InvalidAuthorization"


class SignatureExpire(ApiError):
    code = "AuthFailure.SignatureExpire"


class SecretIdNotFound(ApiError):
    code = "AuthFailure.SecretIdNotFound"


class TokenFailure(ApiError):
    code = "AuthFailure.TokenFailure"


class SignatureFailure(ApiError):
    code = "AuthFailure.SignatureFailure"


class MissingCommonParameter(ApiError):
    code = "MissingParameter"


class InvalidCommonParameter(ApiError):
    code = "InvalidParameter"


class Tc3Authorization(NamedTuple):
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


# What every SDK sends (everything before the signature is the same for all requests of one
# key and day, so its parse is cached); anything else goes through the tolerant parser below.
_CANONICAL_TC3_SCOPE = re.compile(
    r"TC3-HMAC-SHA256 Credential=([^/\s,]+)/(\d{4}-\d{2}-\d{2})/([^/\s,]+)/tc3_request, ?"
    r"SignedHeaders=([a-z0-9;.-]+), ?"
)


@lru_cache(maxsize=1024)
def _canonical_scope(head: str) -> tuple[str, str, str, tuple[str, ...]] | None:
    match = _CANONICAL_TC3_SCOPE.fullmatch(head)
    if match is None:
        return None
    headers = tuple(match.group(4).split(";"))
    if "content-type" not in headers or "host" not in headers:
        return None
    return match.group(1), match.group(2), match.group(3), headers


def parse_tc3_authorization(value: str) -> Tc3Authorization:
    head, _, signature = value.rpartition("Signature=")
    if _is_signature(signature):
        canonical = _canonical_scope(head)
        if canonical is not None:
            return Tc3Authorization(*canonical, signature)
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != signing.TC3_ALGORITHM:
        raise InvalidAuthorization()
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            parts[key.strip()] = val.strip()
    scope = parts.get("Credential", "").split("/")
    headers = tuple(h for h in parts.get("SignedHeaders", "").split(";") if h)
    signature = parts.get("Signature", "")
    if (
        len(scope) != 4
        or not scope[0]
        or not _DATE.fullmatch(scope[1])
        or not scope[2]
        or scope[3] != "tc3_request"
        or "content-type" not in headers
        or "host" not in headers
        or not _is_signature(signature)
    ):
        raise InvalidAuthorization()
    return Tc3Authorization(scope[0], scope[1], scope[2], headers, signature)


def _is_signature(value: str) -> bool:
    """64 lower-case hex digits, as TC3 signatures are written."""
    return len(value) == 64 and not value.strip(_HEX_DIGITS)


class ReplayCache:
    """Remembers v1 (SecretId, Nonce, Timestamp) triples for the length of the time window."""

    def __init__(self, window: int = SKEW_SECONDS, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self._window = window
        self._max_entries = max_entries

    def seen_before(self, key: tuple[str, str, str], now: float) -> bool:
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= 2 * self._window and len(self._seen) < self._max_entries:
                break
            del self._seen[oldest]
        if key in self._seen:
            return True
        self._seen[key] = now
        return False


@dataclass
class Authenticator:
    credentials: CredentialSource
    public_hostnames: tuple[str, ...] = ()
    required_service: str | None = None
    clock: Callable[[], float] = time.time
    replay_cache: ReplayCache | None = None
    _skew: int = field(default=SKEW_SECONDS)

    async def verify_tc3(self, request: RawRequest) -> Credential:
        headers = request.headers
        auth = parse_tc3_authorization(headers.get(b"authorization", b"").decode("latin-1"))
        raw_timestamp = headers.get(b"x-tc-timestamp", b"").decode("latin-1")
        timestamp = self._timestamp(raw_timestamp, "X-TC-Timestamp")
        credential = await self._credential(auth.secret_id)
        if headers.get(b"x-tc-token"):
            raise TokenFailure()
        if utc_date(timestamp) != auth.date:
            raise SignatureFailure(
                "The credential scope date is not the UTC date of X-TC-Timestamp.",
                "签名范围中的日期与 X-TC-Timestamp 的 UTC 日期不一致。",
            )
        if self.required_service is not None and auth.service != self.required_service:
            raise SignatureFailure(
                f"The credential scope service must be `{self.required_service}`.",
                f"签名范围中的服务名必须为 `{self.required_service}`。",
            )
        if headers.get(b"x-tc-content-sha256") == _UNSIGNED_PAYLOAD:
            payload_hash = signing.UNSIGNED_PAYLOAD_SHA256
        else:
            payload_hash = signing.sha256_hex(request.body)
        query = request.query_string if request.method == "GET" else ""
        ts = raw_timestamp.strip()
        signer = signing.tc3_signer(credential.secret_key, auth.date, auth.service)
        for canonical_headers, names in self._tc3_header_sets(request, auth.signed_headers):
            canonical = signing.tc3_canonical_text(
                request.method, query, canonical_headers, names, payload_hash
            )
            # Both are ASCII hex here (the received one was checked when parsed).
            if hmac.compare_digest(signer.sign(ts, canonical), auth.signature):
                return credential
        raise SignatureFailure()

    async def verify_v1(self, request: RawRequest, params: list[tuple[str, str]]) -> Credential:
        values = dict(params)
        for name in ("SecretId", "Timestamp", "Nonce"):
            if not values.get(name):
                raise MissingCommonParameter(
                    f"The parameter `{name}` is missing.", f"缺少参数 `{name}`。"
                )
        self._timestamp(values["Timestamp"], "Timestamp")
        nonce = values["Nonce"]
        if not (nonce.isascii() and nonce.isdigit() and int(nonce) < 2**64):
            raise InvalidCommonParameter(
                "The parameter `Nonce` must be a non-negative integer.",
                "参数 `Nonce` 必须是非负整数。",
            )
        credential = await self._credential(values["SecretId"])
        if values.get("Token"):
            raise TokenFailure()
        method = values.get("SignatureMethod", "HmacSHA1")
        received = values.get("Signature", "")
        variants = [params]
        if any("_" in name for name, _ in params):
            variants.append([(name.replace("_", "."), value) for name, value in params])
        for host in self._host_candidates(request):
            for variant in variants:
                string_to_sign = signing.v1_string_to_sign(request.method, host, variant)
                expected = signing.v1_signature(credential.secret_key, string_to_sign, method)
                if signing.signatures_equal(expected, received):
                    self._check_replay(values["SecretId"], nonce, values["Timestamp"])
                    return credential
        raise SignatureFailure()

    def _timestamp(self, raw: str, name: str) -> int:
        raw = raw.strip()
        if not raw:
            raise MissingCommonParameter(
                f"The parameter `{name}` is missing.", f"缺少参数 `{name}`。"
            )
        if len(raw) > 12 or not (raw.isascii() and raw.isdigit()):
            raise InvalidCommonParameter(
                f"The parameter `{name}` must be a Unix time in seconds.",
                f"参数 `{name}` 必须是 Unix 秒级时间戳。",
            )
        timestamp = int(raw)
        if abs(self.clock() - timestamp) > self._skew:
            raise SignatureExpire()
        return timestamp

    async def _credential(self, secret_id: str) -> Credential:
        credential = await self.credentials.lookup(secret_id) if secret_id else None
        if credential is None:
            raise SecretIdNotFound()
        return credential

    def _check_replay(self, secret_id: str, nonce: str, timestamp: str) -> None:
        if self.replay_cache and self.replay_cache.seen_before(
            (secret_id, nonce, timestamp), self.clock()
        ):
            raise SignatureFailure(
                "This Nonce was already used.", "该 Nonce 已被使用（重放请求）。"
            )

    def _host_candidates(self, request: RawRequest) -> list[str]:
        raw = request.header("host") or ""
        stripped = _PORT.sub("", raw)
        return _unique([raw, stripped, raw.lower(), stripped.lower(), *self.public_hostnames]) or [
            ""
        ]

    def _tc3_header_sets(
        self, request: RawRequest, names: tuple[str, ...]
    ) -> Iterator[tuple[str, str]]:
        """Each plausible rendering of the canonical headers, with the signed names: what
        the SDKs sign first (the two headers exactly as sent), then every host candidate with
        Content-Type as sent and trimmed and lower-cased (the documented canonical form)."""
        headers = request.headers
        if names == _SDK_SIGNED_HEADERS:
            content_type = headers.get(b"content-type", b"")
            host = headers.get(b"host", b"")
            rendered = b"content-type:%s\nhost:%s\n" % (content_type, host)
            yield rendered.decode("latin-1"), _SDK_SIGNED_NAMES
        content_type_text = request.content_type
        content_types = list(dict.fromkeys([content_type_text, content_type_text.strip().lower()]))
        others = {
            name: (request.header(name) or "").strip().lower()
            for name in names
            if name not in ("host", "content-type")
        }
        signed_names = ";".join(names)
        for host_text in self._host_candidates(request):
            for ctype in content_types:
                chosen = {"host": host_text, "content-type": ctype, **others}
                yield "".join([f"{name}:{chosen[name]}\n" for name in names]), signed_names


def utc_date(timestamp: int) -> str:
    """`YYYY-MM-DD` of a Unix time in UTC (cached per day: it sits on every request)."""
    return _utc_day(timestamp // 86400)


@lru_cache(maxsize=64)
def _utc_day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
