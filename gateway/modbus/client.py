"""A lean asyncio Modbus client for TCP links: Modbus TCP (MBAP) and RTU over TCP.

A thin shell around `ClientConnection`: one connection per endpoint, an `asyncio.Protocol` that
feeds received bytes to the pure core and completes the waiting futures, a timer per request.
Errors are `gateway.modbus.errors`: `RequestTimeoutError`, `ExceptionResponseError`,
`FrameError` (an answer that does not fit its request; or bytes that are no Modbus frame, and then
the link is closed: its framing is lost) and `ConnectionLostError`. A request costs
one `write`, one future and one timer handle; pymodbus's client costs several times that.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.modbus.connection import ClientConnection, Framing, Value
from gateway.modbus.errors import ConnectionLostError, FrameError, RequestTimeoutError

__all__ = ["ModbusTcpClient"]

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

    def __init__(self, host: str, port: int, *, framing: Framing = "socket") -> None:
        self.host, self.port, self.framing = host, port, framing
        self._conn = ClientConnection(framing)
        self._transport: asyncio.Transport | None = None
        self._protocol: _LinkProtocol | None = None
        self._waiting: dict[int, asyncio.Future[Value]] = {}
        self.requests = 0
        self.frame_errors = 0

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
                self._conn.forget(rid)

    def close(self) -> None:
        transport, self._transport, self._protocol = self._transport, None, None
        if transport is not None:
            transport.close()
        self._fail_all(ConnectionLostError(f"connection to {self.host}:{self.port} closed"))

    def _expire(self, rid: int, unit: int, timeout_s: float) -> None:
        fut = self._waiting.pop(rid, None)
        self._conn.forget(rid)
        if fut is not None and not fut.done():
            fut.set_exception(RequestTimeoutError(f"unit {unit}: no answer within {timeout_s:g}s"))

    def _on_data(self, protocol: _LinkProtocol, data: bytes) -> None:
        if protocol is not self._protocol:
            return  # a connection we closed
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
