"""The plain ASGI entry for `POST /` and `GET /`: the API's hot path, without a router.

Checks run in the vendor's precedence: method, size, body parse, authentication, action and
version, throttle, permission, parameter schema, then the action itself. Everything not aimed
at `/` goes to the fallback application (health, metrics, agent API, console).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from vulfix.tcapi import envelope, observability
from vulfix.tcapi.authentication import Authenticator
from vulfix.tcapi.credentials import Credential
from vulfix.tcapi.errors import ApiError, api_error, normalize_language
from vulfix.tcapi.flattening import FlatteningError, unflatten
from vulfix.tcapi.invocation import invoke
from vulfix.tcapi.rate_limiting import RateLimiter, RatePolicy
from vulfix.tcapi.raw_request import (
    GET_QUERY_LIMIT,
    TC3_BODY_LIMIT,
    V1_BODY_LIMIT,
    MalformedBody,
    RawRequest,
    RequestTooLarge,
    form_pairs,
    headers_from_scope,
    json_params,
    multipart_params,
)
from vulfix.tcapi.registry import Action, ApiService
from vulfix.tcapi.signing import TC3_ALGORITHM

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

V1_COMMON = frozenset(
    {"Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "Signature",
     "SignatureMethod", "Token", "Language", "RequestClient"}
)  # fmt: skip
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
log = logging.getLogger("vulfix.api")
_DRAIN_LIMIT = 4 * TC3_BODY_LIMIT
_TC3 = TC3_ALGORITHM.encode()
_RESOLVED_LIMIT = 256


@dataclass
class WireConfig:
    service: ApiService
    authenticator: Authenticator
    rate_limiter: RateLimiter
    rate_policy: RatePolicy
    regions: frozenset[str] = frozenset()
    default_language: str = "zh-CN"


@dataclass(slots=True)
class _Envelope:
    """What one request learned on its way, for the answer and the log line."""

    request_id: str
    language: str
    action: str = "-"
    account: str = "-"


def _root_cause(error: BaseException) -> str:
    """The first failure in `error`'s chain of causes, as `Type: message`, on one line (a
    driver's message may add DETAIL and HINT lines)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}".splitlines()[0]


class TcApiApp:
    def __init__(self, config: WireConfig, fallback: ASGIApp) -> None:
        self.config = config
        self.fallback = fallback
        self._resolved: dict[tuple[str, str, str], Action] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/":
            await self._serve_api(scope, receive, send)
        else:
            await self.fallback(scope, receive, send)

    async def _serve_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = headers_from_scope(scope)
        language = headers.get(b"x-tc-language", b"").decode("latin-1")
        state = _Envelope(
            envelope.new_request_id(),
            normalize_language(language, self.config.default_language),
        )
        client = scope.get("client")
        client_addr = f"{client[0]}:{client[1]}" if client else "-"
        code = "Success"
        try:
            body = envelope.encode_success(
                await self._answer(scope, receive, headers, state), state.request_id
            )
        except ApiError as error:
            if isinstance(error, MalformedBody | FlatteningError):
                error = api_error(
                    self.config.service.parse_error_code, error.message_en, error.message_zh
                )
            code = error.error_code
            if error.__cause__ is not None and code.startswith("InternalError"):
                # The caller sees only the code: the operator needs what caused it. One line,
                # no traceback: an outage answers thousands of these, all alike.
                log.warning(
                    "%s, RequestId=%s action=%s: %s",
                    code,
                    state.request_id,
                    state.action,
                    _root_cause(error),
                )
            body = envelope.encode_error(error, state.language, state.request_id)
        except Exception:
            code = "InternalError"
            log.exception(
                "unexpected error, RequestId=%s action=%s", state.request_id, state.action
            )
            body = envelope.encode_error(
                api_error("InternalError"), state.language, state.request_id
            )
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": envelope.response_headers(
                    body, state.request_id, headers.get(b"x-tc-traceid")
                ),
            }
        )
        await send({"type": "http.response.body", "body": body})
        action_label = state.action if state.action in self.config.service.actions else "-"
        observability.record_request(
            request_id=state.request_id,
            action=action_label,
            account=state.account,
            code=code,
            duration=time.perf_counter() - started,
            client=client_addr,
        )

    async def _answer(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes], state: _Envelope
    ) -> Any:
        method = scope["method"]
        if method not in ("GET", "POST"):
            raise api_error("UnsupportedProtocol")
        raw_query = scope.get("query_string", b"")
        query = raw_query.decode("latin-1") if raw_query else ""
        request = RawRequest(method, headers, query)
        is_tc3 = headers.get(b"authorization", b"").lstrip().startswith(_TC3)
        if method == "GET":
            if len(query) > GET_QUERY_LIMIT:
                raise RequestTooLarge()
            pairs = request.query_pairs()
            if is_tc3:
                credential = await self.config.authenticator.verify_tc3(request)
                return await self._dispatch(
                    credential, unflatten(pairs), _action_headers(headers), state
                )
            return await self._serve_v1(request, pairs, state)
        media_type = request.media_type
        limit = (
            TC3_BODY_LIMIT
            if is_tc3 or media_type != "application/x-www-form-urlencoded"
            else V1_BODY_LIMIT
        )
        request.body = await _read_body(receive, headers, limit)
        if media_type == "application/x-www-form-urlencoded":
            pairs = form_pairs(request.body)
            if not is_tc3:
                return await self._serve_v1(request, pairs, state)
            params: dict[str, Any] = unflatten(pairs)
        elif media_type == "application/json":
            params = json_params(request.body)
        elif media_type == "multipart/form-data":
            params = multipart_params(request.content_type, request.body)
        else:
            raise api_error(
                "UnsupportedProtocol",
                f"Content-Type `{media_type}` is not supported.",
                f"不支持的 Content-Type `{media_type}`。",
            )
        if not is_tc3:
            raise api_error("AuthFailure.InvalidAuthorization")
        credential = await self.config.authenticator.verify_tc3(request)
        return await self._dispatch(credential, params, _action_headers(headers), state)

    async def _serve_v1(
        self, request: RawRequest, pairs: list[tuple[str, str]], state: _Envelope
    ) -> Any:
        common = dict(pairs)
        state.language = normalize_language(common.get("Language"), self.config.default_language)
        if "Signature" not in common:
            raise api_error("AuthFailure.InvalidAuthorization")
        credential = await self.config.authenticator.verify_v1(request, pairs)
        business = unflatten((name, value) for name, value in pairs if name not in V1_COMMON)
        target = (common.get("Action", ""), common.get("Version", ""), common.get("Region", ""))
        return await self._dispatch(credential, business, target, state)

    async def _dispatch(
        self,
        credential: Credential,
        params: dict[str, Any],
        target: tuple[str, str, str],
        state: _Envelope,
    ) -> Any:
        state.account = credential.account_name
        action = self._resolved.get(target) or self._resolve_action(target, state)
        state.action = action.name
        region = target[2]
        limit = self.config.rate_policy.limit_for(action.name)
        if limit > 0 and not await self.config.rate_limiter.allow(
            f"{credential.account_id}:{action.name}", limit
        ):
            raise api_error("RequestLimitExceeded")
        return await invoke(
            action, credential, params, request_id=state.request_id, language=state.language,
            region=region,
        )  # fmt: skip

    def _resolve_action(self, target: tuple[str, str, str], state: _Envelope) -> Action:
        """The action a request names, or the vendor's error for it; known-good targets are
        remembered (a bounded few: action x version x region as clients send them)."""
        service = self.config.service
        name, version, region = (part.strip() for part in target)
        if not name:
            raise api_error(
                "MissingParameter", "The parameter `Action` is missing.", "缺少参数 `Action`。"
            )
        state.action = name
        if not version:
            raise api_error(
                "MissingParameter", "The parameter `Version` is missing.", "缺少参数 `Version`。"
            )
        action = service.actions.get(name)
        if action is None:
            raise api_error(
                "InvalidAction", f"The action `{name}` does not exist.", f"接口 `{name}` 不存在。"
            )
        if version != service.version:
            raise api_error(
                "NoSuchVersion",
                f"The version `{version}` does not exist; use {service.version}.",
                f"接口版本 `{version}` 不存在，请使用 {service.version}。",
            )
        if region and (
            len(region) > 64
            or not _REGION.fullmatch(region)
            or (self.config.regions and region not in self.config.regions)
        ):
            raise api_error(
                "UnsupportedRegion",
                f"The region `{region}` is not supported.",
                f"不支持地域 `{region}`。",
            )
        if len(self._resolved) < _RESOLVED_LIMIT:
            self._resolved[target] = action
        return action


def _action_headers(headers: dict[bytes, bytes]) -> tuple[str, str, str]:
    return (
        headers.get(b"x-tc-action", b"").decode("latin-1"),
        headers.get(b"x-tc-version", b"").decode("latin-1"),
        headers.get(b"x-tc-region", b"").decode("latin-1"),
    )


async def _read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The whole body, or `RequestSizeLimitExceeded` once it passes the limit. An oversized
    body is still drained (up to a bound) so the client reads the answer, not a reset."""
    declared = headers.get(b"content-length", b"")
    too_large = declared.isdigit() and int(declared) > limit
    message = await receive()
    if not too_large and not message.get("more_body", False):  # all of it in one message
        body: bytes = message.get("body", b"")
        if len(body) <= limit:
            return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            too_large = True
        if not too_large:
            chunks.append(chunk)
        if not message.get("more_body", False) or size > _DRAIN_LIMIT:
            break
        message = await receive()
    if too_large:
        raise RequestTooLarge()
    return b"".join(chunks)
