"""A TCP relay that tests can break: stop it (Redis "goes away"), start it again (it "returns"),
or freeze its open connections (a half-open link that carries nothing and reports nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TcpProxy:
    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        port: int | None = None,
        tap: Callable[[bytes], None] | None = None,
    ) -> None:
        """`tap` sees every chunk a client sends upstream (to count requests, say)."""
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.tap = tap
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Refuses new connections and resets the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for link in list(self._links):
            link.close()

    def freeze(self) -> None:
        """The open connections stay open but carry nothing more; new ones work."""
        for link in self._links:
            link.frozen = True

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                link.pump(reader, up_writer, self.tap),
                link.pump(up_reader, writer),
                return_exceptions=True,
            )
        finally:
            self._links.discard(link)
            link.close()


class _Link:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.writers = (client, upstream)
        self.frozen = False

    async def pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        tap: Callable[[bytes], None] | None = None,
    ) -> None:
        while data := await source.read(65536):
            if self.frozen:
                continue
            if tap is not None:
                tap(data)
            sink.write(data)
            await sink.drain()
        self.close()

    def close(self) -> None:
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.close()


class SilentServer:
    """Accepts connections and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _hold(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
