"""The lean Modbus TCP client over real sockets: against pymodbus servers (the device simulator),
and against small peers built from the codec that misbehave as field gateways do (exception 11,
garbage on the stream)."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest

from gateway.bus import ModbusBus
from gateway.errors import DeviceError
from gateway.modbus.client import ModbusTcpClient
from gateway.modbus.codec import (
    decode_read_request,
    encode_exception_response,
    encode_mbap,
    parse_mbap,
)
from gateway.modbus.errors import ConnectionLostError, ExceptionResponseError, RequestTimeoutError
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from telemetry.config import DeviceProfile, ModbusSpec

PROFILE = DeviceProfile.model_validate(
    {
        "name": "mixed",
        "points": [
            {"name": "a", "table": "holding", "address": 10, "dtype": "uint16"},
            {"name": "b", "table": "holding", "address": 11, "dtype": "float32"},
            {"name": "c", "table": "input", "address": 0, "dtype": "int16"},
            {"name": "relay", "table": "coil", "address": 3, "dtype": "bool"},
            {"name": "door", "table": "discrete", "address": 5, "dtype": "bool"},
        ],
    }
)


def device(unit: int) -> SimulatedDevice:
    signals = {
        "a": Constant(1000 + unit),
        "b": Constant(1.5),
        "c": Constant(-7),
        "relay": Constant(1),
        "door": Constant(unit % 2),
    }
    return SimulatedDevice(PROFILE, unit, signals, lambda: 0.0)


async def test_reads_every_function_from_a_pymodbus_server():
    sim = ModbusSimServer([device(1), device(2)])
    await sim.start()
    client = ModbusTcpClient("127.0.0.1", sim.port)
    try:
        await client.connect(1.0)
        for unit in (1, 2):
            regs = await client.read(unit, 3, 10, 3, timeout_s=1.0)
            assert struct.unpack(">Hf", regs) == (1000 + unit, 1.5)
            assert struct.unpack(">h", await client.read(unit, 4, 0, 1, timeout_s=1.0)) == (-7,)
            assert (await client.read(unit, 1, 3, 1, timeout_s=1.0)) == (True,)
            assert (await client.read(unit, 2, 5, 1, timeout_s=1.0)) == (bool(unit % 2),)
        # unmapped: the device answers exception 2, and the connection goes on
        with pytest.raises(ExceptionResponseError) as exc:
            await client.read(1, 3, 0, 1, timeout_s=1.0)
        assert exc.value.code == 2
        assert struct.unpack(">H", (await client.read(1, 3, 10, 1, timeout_s=1.0))) == (1001,)
        assert client.requests == sim.requests == 10
    finally:
        client.close()
        await sim.stop()


async def test_a_silent_unit_times_out_alone_and_a_lost_server_is_reconnected():
    devs = [device(1), device(2)]
    devs[1].online = False
    sim = ModbusSimServer(devs)
    await sim.start()
    port = sim.port
    client = ModbusTcpClient("127.0.0.1", port)
    try:
        await client.connect(1.0)
        started = time.monotonic()
        silent = asyncio.ensure_future(client.read(2, 3, 10, 1, timeout_s=0.3))
        assert struct.unpack(">H", await client.read(1, 3, 10, 1, timeout_s=1.0)) == (1001,)
        assert time.monotonic() - started < 0.3  # not queued behind the silent one
        with pytest.raises(RequestTimeoutError):
            await silent
        assert 0.25 < time.monotonic() - started < 1.0
        await sim.stop()
        with pytest.raises(ConnectionLostError):
            for _ in range(20):  # the close reaches us within a few loop turns
                await client.read(1, 3, 10, 1, timeout_s=0.5)
                await asyncio.sleep(0.05)
        assert not client.connected
        sim = ModbusSimServer(devs, port=port)
        await sim.start()
        await client.connect(1.0)
        assert struct.unpack(">H", await client.read(1, 3, 10, 1, timeout_s=1.0)) == (1001,)
    finally:
        client.close()
        await sim.stop()


async def test_rtu_over_tcp_against_a_pymodbus_rtu_server():
    sim = ModbusSimServer([device(7)], framer="rtu")
    await sim.start()
    client = ModbusTcpClient("127.0.0.1", sim.port, framing="rtu")
    try:
        await client.connect(1.0)
        for _ in range(3):
            regs = await client.read(7, 3, 10, 3, timeout_s=1.0)
            assert struct.unpack(">Hf", regs) == (1007, 1.5)
        assert await client.read(7, 1, 3, 1, timeout_s=1.0) == (True,)
        with pytest.raises(RequestTimeoutError):
            await client.read(8, 3, 10, 1, timeout_s=0.2)  # no such unit: no answer
        assert struct.unpack(">h", await client.read(7, 4, 0, 1, timeout_s=1.0)) == (-7,)
    finally:
        client.close()
        await sim.stop()


class Peer:
    """A Modbus TCP peer built from the codec: answers each request with `reply(tid, unit, pdu)`
    (None: no answer). Counts connections and requests."""

    def __init__(self, reply, *, hold: int = 1) -> None:
        """`hold`: answer only once that many requests are in, the last first."""
        self.reply = reply
        self.hold = hold
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        buf = b""
        held: list[bytes] = []
        try:
            while data := await reader.read(4096):
                buf += data
                while True:
                    frame, used = parse_mbap(buf)
                    if frame is None:
                        break
                    buf = buf[used:]
                    self.requests += 1
                    out = self.reply(frame.tid, frame.unit, frame.pdu)
                    if out is not None:
                        held.append(out)
                if len(held) >= self.hold:
                    writer.write(b"".join(reversed(held)))
                    held.clear()
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_pipelined_reads_answered_out_of_order_match_by_transaction_id():
    """Several requests outstanding on one connection (the pymodbus server answers only the
    first of requests that arrive together, so this peer is built from the codec)."""

    def reply(tid: int, unit: int, pdu: bytes) -> bytes:
        _, address, count = decode_read_request(pdu)
        data = b"".join((unit * 100 + address + i).to_bytes(2, "big") for i in range(count))
        return encode_mbap(tid, unit, bytes((3, len(data))) + data)

    peer = Peer(reply, hold=12)
    port = await peer.start()
    client = ModbusTcpClient("127.0.0.1", port)
    try:
        await client.connect(1.0)
        asks = [(1 + i % 3, i, 1 + i % 4) for i in range(12)]
        got = await asyncio.gather(*(client.read(u, 3, a, c, timeout_s=2.0) for u, a, c in asks))
        for (u, a, c), data in zip(asks, got, strict=True):
            assert struct.unpack(f">{c}H", data) == tuple(u * 100 + a + i for i in range(c))
        assert peer.requests == 12 and client.dropped == 0
    finally:
        client.close()
        await peer.stop()


async def test_gateway_exception_11_puts_the_unit_in_backoff_and_2_does_not():
    """A TCP-to-RTU gateway answers 11 for a unit behind it that is silent: treated as silence."""

    def reply(tid: int, unit: int, pdu: bytes) -> bytes:
        function, _, _ = decode_read_request(pdu)
        return encode_mbap(tid, unit, encode_exception_response(function, 11 if unit == 5 else 2))

    peer = Peer(reply)
    port = await peer.start()
    bus = ModbusBus(ModbusSpec(port=port, timeout_s=0.5))
    try:
        with pytest.raises(DeviceError, match="failed to respond"):
            await bus.read(5, "holding", 0, 1, timeout_s=0.5)
        assert bus.silent(5)
        with pytest.raises(DeviceError, match="is silent"):
            await bus.read(5, "holding", 0, 1, timeout_s=0.5)
        with pytest.raises(DeviceError, match="illegal data address"):
            await bus.read(6, "holding", 0, 1, timeout_s=0.5)
        assert not bus.silent(6)
        assert peer.requests == 2
    finally:
        bus.close()
        await peer.stop()


async def test_garbage_on_the_stream_closes_the_link_and_the_next_read_reconnects():
    answers = iter([b"\x00\x01\x00\x07\x00\x05\x01\x03\x02\x00\x2a"])  # protocol id 7

    def reply(tid: int, unit: int, pdu: bytes) -> bytes:
        bad = next(answers, None)
        return bad if bad is not None else encode_mbap(tid, unit, bytes.fromhex("0302002a"))

    peer = Peer(reply)
    port = await peer.start()
    bus = ModbusBus(ModbusSpec(port=port, timeout_s=0.5))
    try:
        with pytest.raises(DeviceError, match="protocol id 7"):
            await bus.read(1, "holding", 0, 1, timeout_s=0.5)
        await asyncio.sleep(1.1)  # past the unit's first backoff (1 s)
        assert await bus.read(1, "holding", 0, 1, timeout_s=0.5) == b"\x00\x2a"
        assert peer.connections == 2
    finally:
        bus.close()
        await peer.stop()
