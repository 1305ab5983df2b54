"""TC3-HMAC-SHA256 and v1 (HmacSHA1 / HmacSHA256) signatures, as pure functions.

Everything here works on the exact bytes and strings the client signed: the raw body, the raw
query string, the Content-Type header verbatim. Nothing is re-encoded or re-serialised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from functools import lru_cache

TC3_ALGORITHM = "TC3-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD_SHA256 = hashlib.sha256(UNSIGNED_PAYLOAD.encode()).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@lru_cache(maxsize=4096)
def tc3_signing_key(secret_key: str, date: str, service: str) -> bytes:
    """The derived key; it depends only on (secret, date, service), so it is cached."""
    k_date = hmac.digest(("TC3" + secret_key).encode(), date.encode(), "sha256")
    k_service = hmac.digest(k_date, service.encode(), "sha256")
    return hmac.digest(k_service, b"tc3_request", "sha256")


def tc3_canonical_request(
    method: str,
    canonical_query: str,
    signed_headers: Iterable[tuple[str, str]],
    payload_hash: str,
) -> str:
    """CanonicalRequest: method, path "/", query, headers (each followed by \\n), names, hash."""
    headers = list(signed_headers)
    return tc3_canonical_text(
        method,
        canonical_query,
        "".join([f"{name}:{value}\n" for name, value in headers]),
        ";".join([name for name, _ in headers]),
        payload_hash,
    )


def tc3_canonical_text(
    method: str, canonical_query: str, canonical_headers: str, names: str, payload_hash: str
) -> str:
    """CanonicalRequest from headers already rendered (`name:value\\n` each) and their names."""
    return f"{method}\n/\n{canonical_query}\n{canonical_headers}\n{names}\n{payload_hash}"


def tc3_string_to_sign(timestamp: str, date: str, service: str, canonical_request: str) -> str:
    scope = f"{date}/{service}/tc3_request"
    digest = sha256_hex(canonical_request.encode())
    return f"{TC3_ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    return tc3_signer(secret_key, date, service).sign_string(string_to_sign)


_BLOCK = 64  # SHA-256's block size


class Tc3Signer:
    """Signs for one (secret, date, service): HMAC-SHA256 with the derived key, its two
    padded-key blocks hashed once (RFC 2104). Copying those states instead of keying an HMAC
    per request halves the HMAC's cost; every request of a key and day shares them."""

    __slots__ = ("_date", "_inner", "_outer", "_service")

    def __init__(self, secret_key: str, date: str, service: str) -> None:
        key = tc3_signing_key(secret_key, date, service).ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self._date, self._service = date, service

    def sign(self, timestamp: str, canonical_request: str) -> str:
        """The signature of a CanonicalRequest sent with this X-TC-Timestamp."""
        return self.sign_string(
            tc3_string_to_sign(timestamp, self._date, self._service, canonical_request)
        )

    def sign_string(self, string_to_sign: str) -> str:
        inner = self._inner.copy()
        inner.update(string_to_sign.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        signature: str = outer.hexdigest()
        return signature


@lru_cache(maxsize=4096)
def tc3_signer(secret_key: str, date: str, service: str) -> Tc3Signer:
    return Tc3Signer(secret_key, date, service)


def v1_string_to_sign(method: str, host: str, params: Iterable[tuple[str, str]]) -> str:
    """`<METHOD><host>/?k=v&...`, keys in byte order, raw (decoded) values, Signature excluded."""
    pairs = sorted((k, v) for k, v in params if k != "Signature")
    joined = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{method}{host}/?{joined}"


def v1_signature(secret_key: str, string_to_sign: str, method: str) -> str:
    digest = hashlib.sha256 if method == "HmacSHA256" else hashlib.sha1
    mac = hmac.new(secret_key.encode(), string_to_sign.encode(), digest).digest()
    return base64.b64encode(mac).decode()


def signatures_equal(expected: str, received: str) -> bool:
    return hmac.compare_digest(expected.encode(), received.encode())
