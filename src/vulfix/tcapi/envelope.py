"""The `{"Response": ...}` envelope: every documented field, a RequestId, exact headers."""

from __future__ import annotations

import os
import random

import msgspec

from vulfix.tcapi.errors import ApiError

_encoder = msgspec.json.Encoder()
CONTENT_TYPE = b"application/json"


# RequestIds must be unique, not secret: a generator seeded from the OS once per process
# avoids a getrandom() system call on every request (a tenth of the request's time).
_ids = random.Random(os.urandom(32))
_VERSION_4 = 0x4000 << 64  # version nibble 4 in bits 76-79
_VARIANT = 0x8000 << 48  # RFC 4122 variant in bits 62-63
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))


def new_request_id() -> str:
    """A lower-case UUID4."""
    value = (_ids.getrandbits(128) & _CLEAR) | _VERSION_4 | _VARIANT
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def encode_success(payload: msgspec.Struct | msgspec.Raw, request_id: str) -> bytes:
    """Splices `RequestId` into the encoded payload object without re-encoding it, in one
    copy: an answer a handler encoded (and cached) itself can be megabytes."""
    body = (
        memoryview(payload)
        if isinstance(payload, msgspec.Raw)
        else memoryview(_encoder.encode(payload))
    )
    separator = b"" if len(body) == 2 else b","  # "{}": nothing to separate from
    tail = b'"RequestId":"' + request_id.encode() + b'"}}'
    return b"".join((b'{"Response":', body[:-1], separator, tail))


def encode_error(error: ApiError, language: str, request_id: str) -> bytes:
    response = {
        "Response": {
            "Error": {"Code": error.error_code, "Message": error.message(language)},
            "RequestId": request_id,
        }
    }
    return _encoder.encode(response)


def response_headers(
    body: bytes, request_id: str, trace_id: bytes | None
) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", CONTENT_TYPE),
        (b"content-length", str(len(body)).encode()),
        (b"x-tc-requestid", request_id.encode()),
    ]
    if trace_id:
        headers.append((b"x-tc-traceid", trace_id))
    return headers
