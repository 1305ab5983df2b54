"""A generic product on the wire layer, for tests that need the ASGI entry in-process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import httpx
import msgspec

from tests.signed_requests import RawCall
from vulfix.tcapi import (
    ApiService,
    Authenticator,
    Caller,
    Credential,
    MemoryRateLimiter,
    RatePolicy,
    TcApiApp,
    WireConfig,
    api_error,
)

SECRET_ID = "AKIDwire0000000000000000000000000001"
SECRET_KEY = "wireSecretKey000000000000000000001"
READ_ONLY_ID = "AKIDwire0000000000000000000000000002"


class EchoRequest(msgspec.Struct, kw_only=True, rename="pascal"):
    fix_id: Annotated[int, msgspec.Meta(ge=0)] | None = None
    name: str | None = None


class EchoResponse(msgspec.Struct, kw_only=True, rename="pascal"):
    fix_id: int
    account: str


class DictCredentials:
    def __init__(self) -> None:
        self.keys = {
            SECRET_ID: Credential(SECRET_ID, SECRET_KEY, 1, "alice", 1250000001, False),
            READ_ONLY_ID: Credential(READ_ONLY_ID, SECRET_KEY, 1, "alice", 1250000001, True),
        }

    async def lookup(self, secret_id: str) -> Credential | None:
        return self.keys.get(secret_id)


async def echo(req: EchoRequest, caller: Caller) -> EchoResponse:
    if req.name == "boom":
        raise RuntimeError("unexpected failure inside a handler")
    if req.name == "business":
        raise api_error("InvalidParameterValue", "business rule", "业务规则")
    return EchoResponse(fix_id=req.fix_id or 0, account=caller.account_name)


async def not_found(_request: object, _caller: Caller) -> EchoResponse:
    raise AssertionError("fallback app must not be reached for `/`")


def build_app(
    *,
    rate_limit: int = 0,
    clock: Callable[[], float] | None = None,
    regions: frozenset[str] = frozenset(),
) -> TcApiApp:
    service = ApiService("cwp", "2018-02-28")
    service.add("DescribeVulFixStatus", EchoRequest, echo, mutating=False)
    service.add("CreateVulFix", EchoRequest, echo, mutating=True)
    authenticator = Authenticator(DictCredentials())
    if clock is not None:
        authenticator.clock = clock
    config = WireConfig(
        service=service,
        authenticator=authenticator,
        rate_limiter=MemoryRateLimiter(),
        rate_policy=RatePolicy(rate_limit),
        regions=regions,
    )

    async def fallback(scope: object, receive: object, send: object) -> None:
        raise AssertionError("fallback reached")

    return TcApiApp(config, fallback)  # type: ignore[arg-type]


async def call(app: TcApiApp, raw: RawCall) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(raw.method, raw.path, headers=raw.headers, content=raw.body)
