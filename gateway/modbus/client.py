"""A lean asyncio Modbus client for TCP links: Modbus TCP (MBAP) and RTU over TCP.

A thin shell around `ClientConnection`: one connection per endpoint, an `asyncio.Protocol` that
feeds received bytes to the pure core and completes the waiting futures, a timer per request.
Errors are `gateway.modbus.errors`: `RequestTimeoutError`, `ExceptionResponseError`,
`FrameError` (an answer that does not fit its request; or bytes that are no Modbus frame: on
Modbus TCP the link is then closed, its framing lost) and `ConnectionLostError`. On RTU over TCP
a garbled answer (`CrcError`, counted in `crc_errors`) fails its request alone and the link is
kept: the next request waits until the line has been quiet for `quiet_s` (the rest of the broken
frame, if any, is dropped meanwhile); so it does after a request timed out, counting from the
timeout, so that an answer a little late is dropped, not taken for the next request's. A request
costs one `write`, one future and one timer handle; pymodbus's client costs several times that.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.modbus.connection import ClientConnection, Framing, Value
from gateway.modbus.errors import (
    ConnectionLostError,
    CrcError,
    FrameError,
    RequestTimeoutError,
)

__all__ = ["RTU_QUIET_S", "ModbusTcpClient"]

# RTU over TCP: how long the line must be silent after a garbled frame before the next request.
# A device server forwards a frame's bytes as they come off the line (or packed after a few
# characters' silence): the end of a frame comes well within this, even at 1200 baud (9 ms a
# byte). Serial RTU's own gap (3.5 characters) is shorter, but the device server adds its own.
RTU_QUIET_S = 0.05

log = logging.getLogger(__name__)


class _LinkProtocol(asyncio.Protocol):
    def __init__(self, client: ModbusTcpClient) -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._on_lost(self, exc)


class ModbusTcpClient:
    """One TCP connection to a Modbus server or serial device server; reconnect by `connect`."""

    def __init__(
        self, host: str, port: int, *, framing: Framing = "socket", quiet_s: float = RTU_QUIET_S
    ) -> None:
        self.host, self.port, self.framing = host, port, framing
        self.quiet_s = quiet_s
        self._conn = ClientConnection(framing)
        self._transport: asyncio.Transport | None = None
        self._protocol: _LinkProtocol | None = None
        self._waiting: dict[int, asyncio.Future[Value]] = {}
        self._heard_at = 0.0  # loop time of the last bytes received
        self.requests = 0
        self.frame_errors = 0  # streams closed for bytes that are no frame (Modbus TCP)
        self.crc_errors = 0  # RTU answers garbled on the line (their requests failed alone)

    @property
    def connected(self) -> bool:
        return self._transport is not None

    @property
    def dropped(self) -> int:
        """Answers that came too late (their request had timed out) or unasked."""
        return self._conn.dropped

    async def connect(self, timeout_s: float) -> None:
        """Open the connection (if closed); `ConnectionLostError` when it cannot be made in time."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                transport, protocol = await loop.create_connection(
                    lambda: _LinkProtocol(self), self.host, self.port
                )
        except (OSError, TimeoutError) as exc:
            why = f"no connection within {timeout_s:g}s" if isinstance(exc, TimeoutError) else exc
            raise ConnectionLostError(f"cannot connect to {self.host}:{self.port}: {why}") from exc
        assert isinstance(transport, asyncio.Transport)
        self._conn = ClientConnection(self.framing)
        self._transport, self._protocol = transport, protocol

    async def read(
        self, unit: int, function: int, address: int, count: int, *, timeout_s: float
    ) -> Value:
        """Read `count` registers (big-endian bytes) or bits (a tuple) of `unit`."""
        if self._conn.resync:
            await self._settle(timeout_s)
        transport = self._transport
        if transport is None:
            raise ConnectionLostError(f"not connected to {self.host}:{self.port}")
        rid, frame = self._conn.read(unit, function, address, count)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Value] = loop.create_future()
        self._waiting[rid] = fut
        self.requests += 1
        transport.write(frame)
        timer = loop.call_later(timeout_s, self._expire, rid, unit, timeout_s)
        try:
            return await fut
        finally:
            timer.cancel()
            if self._waiting.pop(rid, None) is not None:  # cancelled while waiting
                self._give_up(rid)

    async def _settle(self, timeout_s: float) -> None:
        """RTU after a garbled frame or a timeout: wait until no byte has come for `quiet_s`
        (what comes meanwhile is dropped), for at most `timeout_s` more; a line that does not
        fall quiet by then (a device that babbles) is closed."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout_s + self.quiet_s
        while self._conn.resync and self._transport is not None:
            quiet_at = self._heard_at + self.quiet_s
            if loop.time() >= quiet_at:
                self._conn.settled()
                return
            if quiet_at > give_up:
                self.close()
                raise ConnectionLostError(
                    f"{self.host}:{self.port}: the line did not fall quiet within {timeout_s:g}s "
                    "of a garbled frame or a timeout"
                )
            await asyncio.sleep(quiet_at - loop.time())

    def close(self) -> None:
        transport, self._transport, self._protocol = self._transport, None, None
        if transport is not None:
            transport.close()
        self._fail_all(ConnectionLostError(f"connection to {self.host}:{self.port} closed"))

    def _give_up(self, rid: int) -> None:
        # RTU: the quiet the next request waits for counts from now (its answer may be late)
        self._heard_at = max(self._heard_at, asyncio.get_running_loop().time())
        self._conn.forget(rid)

    def _expire(self, rid: int, unit: int, timeout_s: float) -> None:
        fut = self._waiting.pop(rid, None)
        self._give_up(rid)
        if fut is not None and not fut.done():
            fut.set_exception(RequestTimeoutError(f"unit {unit}: no answer within {timeout_s:g}s"))

    def _on_data(self, protocol: _LinkProtocol, data: bytes) -> None:
        if protocol is not self._protocol:
            return  # a connection we closed
        self._heard_at = asyncio.get_running_loop().time()
        try:
            answers = self._conn.receive(data)
        except FrameError as exc:
            self.frame_errors += 1
            log.warning("modbus %s:%s: %s; reconnecting", self.host, self.port, exc)
            transport, self._transport, self._protocol = self._transport, None, None
            if transport is not None:
                transport.abort()
            self._fail_all(exc)
            return
        waiting = self._waiting
        for answer in answers:
            fut = waiting.pop(answer.rid, None)
            if isinstance(answer.value, CrcError):
                self.crc_errors += 1
                log.debug("modbus %s:%s: %s", self.host, self.port, answer.value)
            if fut is None or fut.done():
                continue
            if isinstance(answer.value, Exception):
                fut.set_exception(answer.value)
            else:
                fut.set_result(answer.value)

    def _on_lost(self, protocol: _LinkProtocol, exc: Exception | None) -> None:
        if protocol is not self._protocol:
            return  # a connection we closed
        self._transport, self._protocol = None, None
        why = f": {exc}" if exc else ""
        self._fail_all(ConnectionLostError(f"connection to {self.host}:{self.port} lost{why}"))

    def _fail_all(self, exc: Exception) -> None:
        waiting, self._waiting = self._waiting, {}
        for rid, fut in waiting.items():
            self._conn.forget(rid)
            if not fut.done():
                fut.set_exception(exc)
