"""The composition root: the one place that chooses databases, limiters and wires layers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from vulfix.agent_api.dispatch import AgentDispatch
from vulfix.agent_api.lane import AgentLane, agent_slots
from vulfix.agent_api.notifier import MemoryJobNotifier
from vulfix.agent_api.redis_notifier import RedisJobNotifier
from vulfix.agent_api.routes import agent_routes
from vulfix.agent_protocol import AGENT_API_PATH
from vulfix.console import ConsoleContext, SessionCodec, console_routes, console_templates
from vulfix.cwp.display_time import DisplayClock, parse_zone
from vulfix.cwp.error_codes import to_api_error
from vulfix.cwp.service import SERVICE_NAME, CwpDependencies, build_cwp_service
from vulfix.engine_metrics import EngineFigures
from vulfix.fixing.agent_port import AgentTimings, JobNotifier
from vulfix.fixing.clock import Clock, SystemClock
from vulfix.fixing.engine_loop import EngineLoop
from vulfix.fixing.errors import StorageUnavailable
from vulfix.redis_connection import open_redis
from vulfix.settings import Settings
from vulfix.store.agent_registry import SqlHostRegistry
from vulfix.store.api_keys import ApiKeyStore
from vulfix.store.change_freeze import ChangeFreezes
from vulfix.store.database import connection_capacity, create_engine
from vulfix.store.fix_task_reader import SqlTaskReader
from vulfix.store.fixing_store import SqlFixingStore
from vulfix.store.inventory_queries import SqlInventoryReader
from vulfix.store.overview_queries import SqlOverviewReader
from vulfix.store.secret_cipher import SecretCipher, load_master_key
from vulfix.tcapi import (
    Authenticator,
    Credential,
    MemoryRateLimiter,
    RateLimiter,
    RatePolicy,
    ReplayCache,
    TcApiApp,
    WireConfig,
)
from vulfix.tcapi.credential_cache import CachedCredentialSource
from vulfix.tcapi.redis_rate_limiter import RedisRateLimiter

log = logging.getLogger("vulfix")


@dataclass
class Application:
    asgi: ASGIApp
    engine: AsyncEngine
    settings: Settings
    fixing: SqlFixingStore
    engine_loop: EngineLoop
    notifier: JobNotifier


class StoredCredentials:
    """The store's API keys as the wire layer's credential source."""

    def __init__(self, keys: ApiKeyStore) -> None:
        self.keys = keys

    async def lookup(self, secret_id: str) -> Credential | None:
        try:
            key = await self.keys.find_active_key(secret_id)
        except StorageUnavailable as error:
            # Signature checks need the key: an outage is the API's InternalError.MainDBFail.
            raise to_api_error(error) from error
        if key is None:
            return None
        return Credential(
            key.secret_id,
            key.secret_key,
            key.account_id,
            key.account_name,
            key.app_id,
            key.read_only,
            key.allowed_actions,
        )


def build(settings: Settings, clock: Clock | None = None) -> Application:
    clock = clock or SystemClock()
    engine = create_engine(settings.db)
    master_key = load_master_key(settings)
    credentials = CachedCredentialSource(
        StoredCredentials(ApiKeyStore(engine, SecretCipher(master_key)))
    )
    timings = AgentTimings(
        heartbeat_interval=settings.heartbeat_interval,
        poll_wait=settings.poll_wait,
        lease_seconds=settings.lease_seconds,
        offline_after=settings.offline_after,
        dispatch_timeout=settings.dispatch_timeout,
    )
    notifier, rate_limiter, coordination = replica_coordination(settings)
    fixing = SqlFixingStore(
        engine, timings, notifier.notify, settings.snapshot_quota, held_polls=notifier
    )
    display = DisplayClock(parse_zone(settings.display_timezone))
    inventory = SqlInventoryReader(engine)
    service = build_cwp_service(
        CwpDependencies(
            SqlTaskReader(engine),
            fixing,
            inventory,
            display,
            clock,
            settings.offline_after,
            ChangeFreezes(engine),
        )
    )
    wire = WireConfig(
        service=service,
        authenticator=Authenticator(
            credentials,
            public_hostnames=tuple(settings.public_hostnames),
            required_service=SERVICE_NAME if settings.strict_service else None,
            replay_cache=ReplayCache() if settings.v1_replay_cache else None,
        ),
        rate_limiter=rate_limiter,
        rate_policy=RatePolicy(settings.rate_limit, settings.rate_limits),
        regions=frozenset(settings.regions),
        default_language=settings.default_language,
    )
    loop = EngineLoop(
        fixing.sweep, clock, settings.engine_interval, EngineFigures(fixing.job_counts, clock)
    )
    registry = SqlHostRegistry(engine, writes=fixing.agent_writes)
    console = ConsoleContext(
        service=service,
        credentials=credentials,
        overview=SqlOverviewReader(engine),
        display=display,
        clock=clock,
        sessions=SessionCodec(master_key),
        rate_limiter=rate_limiter,
        offline_after=timedelta(seconds=settings.offline_after),
        sign_in_rate=settings.console_sign_in_rate,
        templates=console_templates(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            async with coordination:
                sweeper = asyncio.create_task(loop.run(), name="vulfix-engine")
                try:
                    yield
                finally:
                    # The engine stops first: it notifies, and the notifier closes after it.
                    sweeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sweeper
                    await registry.flush()  # the last-seen times still queued
        finally:
            await engine.dispose()
            log.info("vulfix stopped cleanly")

    lane = AgentLane(agent_slots(connection_capacity(engine), fixing.agent_writes.max_batch))
    agent = agent_routes(registry, fixing, notifier, timings, clock, lane)
    side_app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics),
            Mount(AGENT_API_PATH, routes=agent),
            Mount("/console", routes=console_routes(console)),
        ],
        lifespan=lifespan,
    )
    # A trusted proxy's forwarded headers matter to the API's log line and the console's
    # secure cookie, not to agents: their requests, most of a fleet's traffic, are dispatched
    # before the middleware (uvicorn's own is off, `serving.draining_server`). They skip
    # Starlette's routing too; the mount above answers their 404s and 405s as it always did.
    # (uvicorn types ASGI apps more narrowly than Starlette: the same callables, cast.)
    api_and_console = cast(
        ASGIApp,
        ProxyHeadersMiddleware(
            cast(Any, TcApiApp(wire, side_app)),
            trusted_hosts=settings.forwarded_allow_ips,
        ),
    )
    agent_first = AgentDispatch(agent, AGENT_API_PATH, api_and_console)
    return Application(agent_first, engine, settings, fixing, loop, notifier)


def replica_coordination(
    settings: Settings,
) -> tuple[JobNotifier, RateLimiter, AbstractAsyncContextManager[None]]:
    """Agent wake-ups and rate limits: kept in this process, or with `settings.redis` shared
    by every replica through Redis. The context runs them for the application's lifetime."""
    if not settings.redis:
        return MemoryJobNotifier(), MemoryRateLimiter(), contextlib.nullcontext()
    redis = open_redis(settings.redis)
    notifier = RedisJobNotifier(redis, channel=settings.redis_prefix + "jobs")
    limiter = RedisRateLimiter(
        redis, prefix=settings.redis_prefix, fail_mode=settings.redis_fail_mode
    )

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[None]:
        notifier.start()
        try:
            yield
        finally:
            await notifier.stop()
            await limiter.close()
            await redis.aclose()

    return notifier, limiter, running()


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
