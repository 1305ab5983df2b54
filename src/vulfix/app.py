"""The composition root: the one place that chooses databases, limiters and wires layers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from vulfix.cwp.display_time import DisplayClock, parse_zone
from vulfix.cwp.service import SERVICE_NAME, build_cwp_service
from vulfix.settings import Settings
from vulfix.store.api_keys import ApiKeyStore
from vulfix.store.database import create_engine
from vulfix.store.fix_task_reader import SqlTaskReader
from vulfix.store.secret_cipher import SecretCipher, load_master_key
from vulfix.tcapi import (
    Authenticator,
    Credential,
    MemoryRateLimiter,
    RatePolicy,
    ReplayCache,
    TcApiApp,
    WireConfig,
)
from vulfix.tcapi.credential_cache import CachedCredentialSource

log = logging.getLogger("vulfix")


@dataclass
class Application:
    asgi: TcApiApp
    engine: AsyncEngine
    settings: Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoredCredentials:
    """The store's API keys as the wire layer's credential source."""

    def __init__(self, keys: ApiKeyStore) -> None:
        self.keys = keys

    async def lookup(self, secret_id: str) -> Credential | None:
        key = await self.keys.find_active_key(secret_id)
        if key is None:
            return None
        return Credential(
            key.secret_id,
            key.secret_key,
            key.account_id,
            key.account_name,
            key.app_id,
            key.read_only,
        )


def build(settings: Settings) -> Application:
    engine = create_engine(settings.db)
    cipher = SecretCipher(load_master_key(settings))
    credentials = CachedCredentialSource(StoredCredentials(ApiKeyStore(engine, cipher)))
    service = build_cwp_service(
        SqlTaskReader(engine), DisplayClock(parse_zone(settings.display_timezone)), utc_now
    )
    wire = WireConfig(
        service=service,
        authenticator=Authenticator(
            credentials,
            public_hostnames=tuple(settings.public_hostnames),
            required_service=SERVICE_NAME if settings.strict_service else None,
            replay_cache=ReplayCache() if settings.v1_replay_cache else None,
        ),
        rate_limiter=MemoryRateLimiter(),
        rate_policy=RatePolicy(settings.rate_limit, settings.rate_limits),
        regions=frozenset(settings.regions),
        default_language=settings.default_language,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await engine.dispose()
            log.info("vulfix stopped cleanly")

    side_app = Starlette(
        routes=[Route("/healthz", healthz), Route("/metrics", metrics)],
        lifespan=lifespan,
    )
    return Application(TcApiApp(wire, side_app), engine, settings)


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
