"""RTU over TCP on a noisy serial line (over real sockets): the pymodbus simulator serves RTU frames
behind a relay that plays the serial device server and corrupts chosen answers, as line noise
does. A CRC error costs the one request (its points comm loss, counted in `crc_errors`); the link
is kept, so the other units behind the same converter are not lost to a reconnect, and the line
is let fall quiet before the next request, so the rest of a broken frame is not read as the next
answer."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from gateway.bus import ModbusBus
from gateway.errors import DeviceError
from gateway.modbus.client import ModbusTcpClient
from gateway.modbus.codec import rtu_frame_length
from gateway.modbus.errors import RequestTimeoutError
from gateway.poller import DevicePoller
from hazardhub.settings import load_profiles
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from telemetry.codec import TelemetryBatch
from telemetry.config import DeviceProfile, HubConfig, ModbusSpec
from telemetry.quality import Quality
from telemetry.registry import DeviceInfo, build_registry

ROOT = Path(__file__).resolve().parent.parent
SHIPPED, PACKS = load_profiles(ROOT / "profiles")
PROFILE = DeviceProfile.model_validate(
    {
        "name": "two-blocks",
        "points": [
            {"name": "near", "table": "holding", "address": 0, "dtype": "uint16"},
            {"name": "far", "table": "holding", "address": 40, "dtype": "uint16"},
        ],
    }
)


class NoisyLine:
    """A serial device server in front of an RTU-over-TCP server: forwards requests as they come
    and each answer `delay_s` later (the serial line's time), and corrupts the answers numbered
    in `corrupt` (from 1, counted over all connections): "crc" flips a bit of the CRC; "split"
    lowers the byte count by 2, so that the frame seems to end 2 bytes early with a wrong CRC,
    and sends those 2 bytes `tail_s` later (the end of the broken frame, still on its way);
    "late" sends the answer `late_s` later than the others (a unit slow to answer)."""

    def __init__(
        self,
        target_port: int,
        corrupt: dict[int, str],
        *,
        delay_s: float = 0.0,
        tail_s: float = 0.02,
        late_s: float = 0.0,
    ) -> None:
        self.target_port = target_port
        self.corrupt = corrupt
        self.delay_s, self.tail_s, self.late_s = delay_s, tail_s, late_s
        self.connections = 0
        self.answers = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self._writers:
            w.close()  # the pumps see the end of their streams
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        down = asyncio.create_task(self._down(up_reader, writer))
        self._tasks.add(down)
        try:
            while data := await reader.read(4096):
                up_writer.write(data)
        finally:
            up_writer.close()
            writer.close()

    async def _down(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        buf = b""
        while data := await reader.read(4096):
            buf += data
            while (size := rtu_frame_length(buf)) and len(buf) >= size:
                frame, buf = bytearray(buf[:size]), buf[size:]
                self.answers += 1
                mode = self.corrupt.get(self.answers)
                if mode == "crc":
                    frame[-1] ^= 0x01
                if mode == "split":
                    frame[2] -= 2
                    head, tail = bytes(frame[: size - 2]), bytes(frame[size - 2 :])
                    loop.call_later(self.delay_s, writer.write, head)
                    loop.call_later(self.delay_s + self.tail_s, writer.write, tail)
                else:
                    late = self.late_s if mode == "late" else 0.0
                    loop.call_later(self.delay_s + late, writer.write, bytes(frame))


def device_info(port: int, unit: int) -> DeviceInfo:
    config = HubConfig.model_validate(
        {
            "tenants": [
                {
                    "id": "t",
                    "sites": [
                        {
                            "id": "s",
                            "devices": [
                                {
                                    "id": f"u{unit}",
                                    "profile": "two-blocks",
                                    "modbus": {
                                        "transport": "rtu-over-tcp",
                                        "port": port,
                                        "unit": unit,
                                        "timeout_s": 0.5,
                                    },
                                    "sensors": [
                                        {"id": f"u{unit}-{p}", "point": p, "kind": "other"}
                                        for p in ("near", "far")
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
            "device_profiles": [PROFILE.model_dump()],
        }
    )
    return next(iter(build_registry(config, SHIPPED, PACKS).devices.values()))


def readings(batch: TelemetryBatch | None) -> dict[str, tuple[float, int]]:
    assert batch is not None
    return {
        batch.keys[k]: (v, int(q))
        for k, v, q in zip(
            batch.key.tolist(), batch.value.tolist(), batch.quality.tolist(), strict=True
        )
    }


def lost(reading: tuple[float, int]) -> bool:
    return math.isnan(reading[0]) and reading[1] == Quality.COMM_LOSS


@pytest.fixture
async def simulator():
    devices = [
        SimulatedDevice(PROFILE, u, {"near": Constant(10 * u), "far": Constant(10 * u + 1)}, float)
        for u in (1, 2)
    ]
    sim = ModbusSimServer(devices, framer="rtu")
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_a_crc_error_costs_one_request_and_keeps_the_other_units_link(simulator):
    line = NoisyLine(simulator.port, {2: "crc"})  # unit 1's second read of the first cycle
    port = await line.start()
    one, two = device_info(port, 1), device_info(port, 2)
    bus = ModbusBus(one.spec.modbus)

    async def sink(batch: TelemetryBatch) -> None:
        pass

    pollers = [DevicePoller(d, sink, gateway="gw", epoch=1, bus=bus) for d in (one, two)]
    try:
        first = readings(await pollers[0].poll_once())
        assert first["near"] == (10, Quality.GOOD)  # read before the noise: kept
        assert lost(first["far"])  # the answer with the wrong CRC: lost alone
        assert readings(await pollers[1].poll_once()) == {
            "near": (20, Quality.GOOD),
            "far": (21, Quality.GOOD),
        }
        assert line.connections == 1  # the converter's link was kept for unit 2
        assert bus.crc_errors == 1 and not bus.silent(1)
        assert pollers[0].failures == 0 and pollers[0].failed_requests == 1
        # the next cycle reads everything again
        assert readings(await pollers[0].poll_once()) == {
            "near": (10, Quality.GOOD),
            "far": (11, Quality.GOOD),
        }
        assert line.connections == 1 and line.answers == 6
    finally:
        bus.close()
        await line.stop()


async def test_the_rest_of_a_broken_frame_is_not_taken_for_the_next_answer(simulator):
    """The first answer breaks off 2 bytes early and its end comes 20 ms later, after the next
    request would have gone out at once: the client lets the line fall quiet first (50 ms), and
    unit 2's answer is read whole."""
    line = NoisyLine(simulator.port, {1: "split"}, delay_s=0.03, tail_s=0.02)
    port = await line.start()
    bus = ModbusBus(ModbusSpec(transport="rtu-over-tcp", port=port, timeout_s=0.5))
    try:
        with pytest.raises(DeviceError, match="CRC"):
            await bus.read(1, "holding", 0, 1, timeout_s=0.5)
        assert await bus.read(2, "holding", 0, 1, timeout_s=0.5) == (20).to_bytes(2, "big")
        assert await bus.read(1, "holding", 40, 1, timeout_s=0.5) == (11).to_bytes(2, "big")
        assert bus.crc_errors == 1 and line.connections == 1
    finally:
        bus.close()
        await line.stop()


async def test_an_answer_come_after_its_timeout_is_not_taken_for_the_next_request(simulator):
    """Unit 1 answers a read 20 ms after it timed out; the next read (the same unit, function and
    length, other registers: a poll's next block) would have gone at once and taken that answer
    for its own: register 0's value under register 40's name. The client lets the line fall quiet
    after a timeout first (50 ms from the timeout): the late answer is dropped, counted."""
    line = NoisyLine(simulator.port, {1: "late"}, late_s=0.27)
    port = await line.start()
    client = ModbusTcpClient("127.0.0.1", port, framing="rtu")
    try:
        await client.connect(1.0)
        with pytest.raises(RequestTimeoutError):
            await client.read(1, 3, 0, 1, timeout_s=0.25)
        assert await client.read(1, 3, 40, 1, timeout_s=0.25) == (11).to_bytes(2, "big")
        assert await client.read(1, 3, 0, 1, timeout_s=0.25) == (10).to_bytes(2, "big")
        assert client.dropped == 1 and line.connections == 1 and line.answers == 3
    finally:
        client.close()
        await line.stop()
