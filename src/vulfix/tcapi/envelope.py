"""The `{"Response": ...}` envelope: every documented field, a RequestId, exact headers."""

from __future__ import annotations

import uuid

import msgspec

from vulfix.tcapi.errors import ApiError

_encoder = msgspec.json.Encoder()
CONTENT_TYPE = b"application/json"


def new_request_id() -> str:
    return str(uuid.uuid4())


def encode_success(payload: msgspec.Struct, request_id: str) -> bytes:
    """Splices `RequestId` into the encoded payload object without re-encoding it."""
    body = _encoder.encode(payload)
    request_id_member = b'"RequestId":"' + request_id.encode() + b'"'
    if body == b"{}":
        inner = b"{" + request_id_member + b"}"
    else:
        inner = body[:-1] + b"," + request_id_member + b"}"
    return b'{"Response":' + inner + b"}"


def encode_error(error: ApiError, language: str, request_id: str) -> bytes:
    response = {
        "Response": {
            "Error": {"Code": error.error_code, "Message": error.message(language)},
            "RequestId": request_id,
        }
    }
    return _encoder.encode(response)


def response_headers(
    body: bytes, request_id: str, trace_id: str | None
) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", CONTENT_TYPE),
        (b"content-length", str(len(body)).encode()),
        (b"x-tc-requestid", request_id.encode()),
    ]
    if trace_id:
        headers.append((b"x-tc-traceid", trace_id.encode("latin-1", "replace")))
    return headers
