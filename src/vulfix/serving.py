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
