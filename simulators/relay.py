"""A TCP relay that can lose its link: a gateway's uplink to the broker, cut on demand.

The relay listens on a port and forwards bytes both ways between each accepted connection and
the target (the MQTT broker). `cut()` aborts every open connection (both sides, as a broken link
would) and refuses new ones, accepting and at once resetting them, until `restore()`, or for
`for_s` seconds. It knows nothing of MQTT; the gateway sees a broker that went away and came
back. `outages` records each cut as (from, to) wall-clock epoch ms, the ground truth of a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

__all__ = ["UplinkRelay"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class UplinkRelay:
    """Forwards `host:port` (0: any free port) to `target_host:target_port` until cut."""

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target = (target_host, target_port)
        self.host, self._port = host, port
        self.outages: list[tuple[int, int | None]] = []  # (from, to) wall ms; to None: still cut
        self.refused = 0  # connections refused while cut
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._restore: asyncio.TimerHandle | None = None

    @property
    def port(self) -> int:
        """The port bound (known after `start`)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def is_cut(self) -> bool:
        return bool(self.outages) and self.outages[-1][1] is None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self._port)
        log.info("relay %s:%d -> %s:%d", self.host, self.port, *self.target)

    async def stop(self) -> None:
        """Close the listener and every link; wait for the connection handlers to end."""
        if self._restore is not None:
            self._restore.cancel()
            self._restore = None
        if self._server is not None:
            self._server.close()
        self._abort_links()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def cut(self, for_s: float | None = None) -> None:
        """Lose the link: abort every open connection and refuse new ones, for `for_s` seconds
        (None: until `restore`). Cutting a cut link only moves its end."""
        if self._restore is not None:
            self._restore.cancel()
            self._restore = None
        if not self.is_cut:
            self.outages.append((_wall_ms(), None))
            log.info("relay :%d cut (%d links)", self.port, len(self._links))
        self._abort_links()
        if for_s is not None:
            self._restore = asyncio.get_running_loop().call_later(for_s, self.restore)

    def restore(self) -> None:
        """The link is back: new connections are forwarded again."""
        if self._restore is not None:
            self._restore.cancel()
            self._restore = None
        if self.is_cut:
            start, _ = self.outages[-1]
            self.outages[-1] = (start, _wall_ms())
            log.info("relay :%d restored (%d connections refused)", self.port, self.refused)

    def _abort_links(self) -> None:
        for client, upstream in list(self._links):
            client.transport.abort()
            upstream.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            log.warning("relay :%d: target %s:%d unreachable: %s", self.port, *self.target, exc)
            writer.transport.abort()
            return
        if self.is_cut:  # cut while connecting
            up_writer.transport.abort()
            writer.transport.abort()
            return
        link = (writer, up_writer)
        self._links.add(link)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_pump(reader, up_writer), name="relay-up")
                tg.create_task(_pump(up_reader, writer), name="relay-down")
        finally:
            self._links.discard(link)
            for w in link:
                w.transport.abort()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until either side closes or fails; then close the other direction too."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
    dst.transport.abort()
