"""Calling a registered action for an authenticated key: its policy and read-only checks,
parameter decoding against the action's schema, then the handler.

The ASGI entry calls this after verifying a signature; an in-process caller (the web console)
calls it for a signed-in key, so both get the same answers and the same refusals.
"""

from __future__ import annotations

from typing import Any

import msgspec

from vulfix.tcapi.credentials import Caller, Credential
from vulfix.tcapi.errors import EN_US, api_error
from vulfix.tcapi.registry import Action
from vulfix.tcapi.schema import decode_params

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


async def invoke(
    action: Action,
    credential: Credential,
    params: dict[str, Any],
    *,
    request_id: str,
    language: str,
    region: str = "",
) -> msgspec.Struct | msgspec.Raw:
    """The action's typed answer; raises `ApiError` as the wire would answer it."""
    if credential.allowed_actions is not None and action.name not in credential.allowed_actions:
        raise api_error(
            "UnauthorizedOperation",
            f"This key's policy does not allow {action.name}.",
            f"该密钥的策略不允许调用 {action.name}。",
        )
    if action.mutating and credential.read_only:
        raise api_error(
            "UnauthorizedOperation",
            f"This key is read-only and cannot call {action.name}.",
            f"只读密钥无权调用 {action.name}。",
        )
    typed_request = decode_params(params, action.request_type)
    caller = Caller(
        account_id=credential.account_id,
        account_name=credential.account_name,
        app_id=credential.app_id,
        secret_id=credential.secret_id,
        read_only=credential.read_only,
        request_id=request_id,
        language=language,
        region=region,
    )
    return await action.handler(typed_request, caller)


async def invoke_json(
    action: Action,
    credential: Credential,
    params: dict[str, Any],
    *,
    request_id: str,
    language: str = EN_US,
) -> dict[str, Any]:
    """`invoke`, answering the `Response` object as plain JSON values (without RequestId)."""
    answer = await invoke(action, credential, params, request_id=request_id, language=language)
    encoded = answer if isinstance(answer, msgspec.Raw) else _encoder.encode(answer)
    decoded: dict[str, Any] = _decoder.decode(encoded)
    return decoded
