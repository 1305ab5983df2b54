"""The request as received: method, headers, raw query and body bytes, nothing re-encoded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from vulfix.tcapi.errors import ApiError

GET_QUERY_LIMIT = 32 * 1024
V1_BODY_LIMIT = 1024 * 1024
TC3_BODY_LIMIT = 10 * 1024 * 1024

_json_decoder = msgspec.json.Decoder()


class RequestTooLarge(ApiError):
    code = "RequestSizeLimitExceeded"


class MalformedBody(ApiError):
    code = "InvalidParameter"


class MalformedMultipart(ApiError):
    code = "InvalidRequest"


@dataclass(slots=True)
class RawRequest:
    """Header names are lower-case bytes as the ASGI server delivers them; values are decoded
    (latin-1, the bytes HTTP carries) only when asked for, since most are never read."""

    method: str
    headers: dict[bytes, bytes]
    query_string: str
    body: bytes = b""
    _query_pairs: list[tuple[str, str]] | None = field(default=None, repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get(b"content-type", b"").decode("latin-1")

    @property
    def media_type(self) -> str:
        return media_type(self.headers.get(b"content-type", b""))

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def query_pairs(self) -> list[tuple[str, str]]:
        if self._query_pairs is None:
            self._query_pairs = parse_qsl(self.query_string, keep_blank_values=True)
        return self._query_pairs


@lru_cache(maxsize=64)
def media_type(content_type: bytes) -> str:
    """`application/json` of `Application/JSON; charset=utf-8` (clients send a handful)."""
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


def headers_from_scope(scope: Mapping[str, Any]) -> dict[bytes, bytes]:
    """The request's headers by lower-case name (ASGI servers lower-case them); a repeated
    header keeps its last value."""
    return dict(scope["headers"])


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedBody(
            "The form body is not valid UTF-8 URL-encoded data.", "表单请求体格式错误。"
        ) from exc


def json_params(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = _json_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise MalformedBody(
            f"The JSON body cannot be parsed: {exc}.", "请求体不是合法的 JSON。"
        ) from exc
    if not isinstance(value, dict):
        raise MalformedBody("The JSON body must be an object.", "请求体必须是 JSON 对象。")
    return value


def multipart_params(content_type: str, body: bytes) -> dict[str, Any]:
    """One part per top-level parameter; parts typed application/json hold lists and objects."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart() or message.defects:
        raise MalformedMultipart()
    params: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes) or part.defects:
            raise MalformedMultipart()
        if part.get_content_type() == "application/json":
            try:
                params[name] = _json_decoder.decode(payload)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise MalformedMultipart() from exc
        else:
            try:
                params[name] = payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedMultipart() from exc
    return params
