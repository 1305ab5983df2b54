"""The composed application: what its lifespan finishes before the server stops."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.agent_api.agent_calls import API, enrol, last_seen
from vulfix.app import build
from vulfix.fixing.clock import ManualClock
from vulfix.settings import load_settings
from vulfix.store import group_commit
from vulfix.store.agent_registry import SqlHostRegistry


class Lifespan:
    """The ASGI lifespan messages a server sends, for an application run in-process."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.create_task(self._app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        assert (await self._outbox.get())["type"] == "lifespan.startup.complete"

    async def stop(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        assert (await self._outbox.get())["type"] == "lifespan.shutdown.complete"
        assert self._task is not None
        await self._task


async def test_a_last_seen_time_still_queued_is_written_before_the_server_stops(
    migrated_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "SOON", 3600.0)  # nothing but the stop writes it
    clock = ManualClock()
    app = build(load_settings(db=migrated_db_url, rate_limit=0), clock)
    lifespan = Lifespan(app.asgi)
    await lifespan.start()
    transport = httpx.ASGITransport(app=app.asgi)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://vulfix.test") as http:
        host = await enrol(http, SqlHostRegistry(app.engine), clock)
        heard = clock.advance(45)
        beat = await http.post(f"{API}/heartbeat", headers=host.headers)
        assert beat.status_code == 200, beat.text
    await lifespan.stop()

    assert await last_seen(app.engine, host.host_id) == heard.replace(tzinfo=None)
    await app.engine.dispose()
