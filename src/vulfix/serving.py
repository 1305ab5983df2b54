"""Running the application under uvicorn, with a shutdown that does not wait on long-polls.

uvicorn's graceful shutdown waits for every request in flight, and a held agent poll is in
flight for up to the poll wait (25 s by default): a replica with agents attached would take
the whole `timeout_graceful_shutdown` to stop, then cut the polls off. `DrainingServer`
releases the held polls the moment shutdown begins, so they answer "no job" at once and the
server stops in milliseconds.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from vulfix.app import Application
from vulfix.settings import Settings


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, release: Callable[[], None]) -> None:
        super().__init__(config)
        self._release = release
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.release()

    def release(self) -> None:
        """Ends the held polls (safe from a signal handler: it runs on the loop's thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._release)


def draining_server(application: Application, settings: Settings) -> DrainingServer:
    """The server `vulfix serve` and `vulfix demo` run: `settings`' address and TLS, no access
    log (the API writes its own line); the application reads forwarded headers itself."""
    config = uvicorn.Config(
        application.asgi,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        access_log=False,
        log_config=None,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        # Agents keep connections between long-polls; uvicorn's default of 5 s drops them.
        timeout_keep_alive=75,
        # Applied by the application itself, to what needs them (`app.build`).
        proxy_headers=False,
    )
    return DrainingServer(config, application.notifier.release_all)
