"""The request as received: method, headers, raw query and body bytes, nothing re-encoded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
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
    method: str
    headers: dict[str, str]
    query_string: str
    body: bytes = b""
    client: str = ""
    _query_pairs: list[tuple[str, str]] | None = field(default=None, repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def query_pairs(self) -> list[tuple[str, str]]:
        if self._query_pairs is None:
            self._query_pairs = parse_qsl(self.query_string, keep_blank_values=True)
        return self._query_pairs


def headers_from_scope(scope: Mapping[str, Any]) -> dict[str, str]:
    """Values as sent (latin-1, the bytes HTTP carries); ASGI servers lower-case the names."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


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
