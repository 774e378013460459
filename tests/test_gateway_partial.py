"""A request of a device's cycle that fails costs the points of that request alone (over real
sockets): an exception response for one block (the pymodbus simulator), no answer to one block or
a malformed answer (peers built from the codec); with a status register, the points it qualifies
too. A block never answered is put in backoff on its own, so it does not slow its bus. A dead
connection is still the whole device's comm loss."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from gateway.bus import ModbusBus
from gateway.modbus.codec import (
    decode_read_request,
    encode_mbap,
    parse_mbap,
)
from gateway.poller import DevicePoller
from hazardhub.settings import load_profiles
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant
from telemetry.codec import TelemetryBatch
from telemetry.config import DeviceProfile, HubConfig
from telemetry.quality import Quality
from telemetry.registry import DeviceInfo, build_registry

ROOT = Path(__file__).resolve().parent.parent
SHIPPED, PACKS = load_profiles(ROOT / "profiles")

# what the device has: holding 10-12 and input 0
SERVED = [
    {"name": "a", "table": "holding", "address": 10, "dtype": "uint16"},
    {"name": "b", "table": "holding", "address": 11, "dtype": "float32"},
    {"name": "c", "table": "input", "address": 0, "dtype": "int16"},
]
# what the profile asks for besides: a block far from the others (its own request)
FAR = {"name": "far", "table": "holding", "address": 100, "dtype": "uint16"}


def device_info(
    port: int,
    points: list[dict[str, object]],
    status: tuple[dict[str, object], ...] = (),
    **modbus: object,
) -> DeviceInfo:
    """One device of `points`, each a sensor but the status registers that `status` reads."""
    profile = DeviceProfile.model_validate(
        {"name": "partial", "points": points, "status": list(status)}
    )
    registers = {st["point"] for st in status}
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
                                    "id": "d",
                                    "profile": "partial",
                                    "modbus": {"port": port, "timeout_s": 0.2, **modbus},
                                    "sensors": [
                                        {"id": p["name"], "point": p["name"], "kind": "other"}
                                        for p in points
                                        if p["name"] not in registers
                                    ],
                                }
                            ],
                        }
                    ],
                }
            ],
            "device_profiles": [profile.model_dump()],
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


def good(got: dict[str, tuple[float, int]], name: str, value: float) -> bool:
    return got[name] == (value, Quality.GOOD)


def lost(got: dict[str, tuple[float, int]], name: str) -> bool:
    v, q = got[name]
    return math.isnan(v) and q == Quality.COMM_LOSS


async def test_an_illegal_data_address_costs_only_its_requests_points():
    profile = DeviceProfile.model_validate({"name": "served", "points": SERVED})
    signals = {"a": Constant(7), "b": Constant(2.5), "c": Constant(-3)}
    sim = ModbusSimServer([SimulatedDevice(profile, 1, signals, lambda: 0.0)])
    await sim.start()
    info = device_info(sim.port, [*SERVED, FAR])
    sent: list[TelemetryBatch] = []

    async def sink(batch: TelemetryBatch) -> None:
        sent.append(batch)

    poller = DevicePoller(info, sink, gateway="gw", epoch=1, clock_ms=lambda: 1000)
    try:
        assert [(r.table, r.address) for r in poller.requests] == [
            ("holding", 10),
            ("holding", 100),
            ("input", 0),
        ]
        first = readings(await poller.poll_once())
        assert good(first, "a", 7) and good(first, "b", 2.5) and good(first, "c", -3)
        assert lost(first, "far")  # the device answered exception 02 for it
        # then the lost point is left out; the others keep coming
        second = readings(await poller.poll_once())
        assert second == {"a": (7, 0), "b": (2.5, 0), "c": (-3, 0)}
        assert poller.failed_requests == 2 and poller.failures == 0
        assert not poller.bus.silent(1)
        assert [b.seq for b in sent] == [0, 1]
    finally:
        await poller.close()
        await sim.stop()


class IgnoringPeer:
    """A Modbus TCP device built from the codec: holding and input registers read their
    address; it answers no read that starts at an address in `ignore` (as some firmware does
    for a block it lacks)."""

    def __init__(self, ignore: set[int]) -> None:
        self.ignore = ignore
        self.asked: list[int] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def _reply(self, tid: int, unit: int, pdu: bytes) -> bytes | None:
        function, address, count = decode_read_request(pdu)
        self.asked.append(address)
        if address in self.ignore:
            return None
        data = b"".join((address + i).to_bytes(2, "big") for i in range(count))
        return encode_mbap(tid, unit, bytes((function, len(data))) + data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        buf = b""
        try:
            while data := await reader.read(4096):
                buf += data
                while True:
                    frame, used = parse_mbap(buf)
                    if frame is None:
                        break
                    buf = buf[used:]
                    out = self._reply(frame.tid, frame.unit, frame.pdu)
                    if out is not None:
                        writer.write(out)
        finally:
            writer.close()

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


POINTS = [
    {"name": "low", "table": "holding", "address": 0, "dtype": "uint16"},
    {"name": "mid", "table": "holding", "address": 20, "dtype": "uint16"},
    {"name": "high", "table": "holding", "address": 40, "dtype": "uint16"},
    {"name": "inp", "table": "input", "address": 5, "dtype": "uint16"},
]


@contextlib.asynccontextmanager
async def polling(ignore: set[int]) -> AsyncIterator[tuple[DevicePoller, IgnoringPeer]]:
    """A poller of the four points against a peer that ignores reads at `ignore`."""
    peer = IgnoringPeer(ignore)
    port = await peer.start()

    async def sink(batch: TelemetryBatch) -> None:
        pass

    poller = DevicePoller(device_info(port, POINTS), sink, gateway="gw", epoch=1)
    try:
        yield poller, peer
    finally:
        await poller.close()
        await peer.stop()


async def test_one_unanswered_block_costs_its_points_alone_and_goes_last():
    async with polling({0}) as (poller, peer):
        # the unanswered block is the first of the plan
        first = readings(await poller.poll_once())
        assert lost(first, "low")
        assert good(first, "mid", 20) and good(first, "high", 40) and good(first, "inp", 5)
        assert not poller.bus.silent(1)
        second = readings(await poller.poll_once())
        assert second == {"mid": (20, 0), "high": (40, 0), "inp": (5, 0)}
        # the second cycle asked the silent block last, after the unit had answered (the first
        # miss was forgiven: a frame lost on the line); the second puts the block in backoff
        assert peer.asked == [0, 20, 40, 5, 20, 40, 5, 0]
        third = readings(await poller.poll_once())
        assert third == second and peer.asked[8:] == [20, 40, 5]  # not asked: no timeout
        assert poller.failed_requests == 3 and poller.failures == 0


async def test_two_unanswered_blocks_of_a_live_unit_cost_their_points_alone():
    async with polling({0, 20}) as (poller, peer):
        # two silent blocks first: the first is forgiven, the second puts the unit in backoff
        first = readings(await poller.poll_once())
        assert all(lost(first, name) for name in first)
        assert poller.bus.silent(1)
        poller.bus._silent_until.clear()  # past the backoff, without waiting for it
        # the blocks that were not asked go first, the unit answers: the two alone are lost, and
        # go in backoff on their own
        second = readings(await poller.poll_once())
        assert second == {"high": (40, 0), "inp": (5, 0)}
        third = readings(await poller.poll_once())
        assert third == {"high": (40, 0), "inp": (5, 0)}
        assert not poller.bus.silent(1)
        assert peer.asked[2:] == [40, 5, 0, 20, 40, 5]


async def test_a_dead_connection_is_still_the_whole_devices_comm_loss():
    async with polling({0}) as (poller, peer):
        first = readings(await poller.poll_once())
        assert lost(first, "low") and good(first, "mid", 20)
        await peer.stop()
        await asyncio.sleep(0.05)  # the close reaches the client
        gone = readings(await poller.poll_once())
        # every point the batch has not already said lost: "low" was said, once
        assert set(gone) == {"mid", "high", "inp"} and all(lost(gone, k) for k in gone)
        assert await poller.poll_once() is None
        assert poller.failures == 2


async def test_a_silent_unit_is_the_whole_devices_comm_loss_once():
    async with polling({0, 5, 20, 40}) as (poller, peer):
        batch = readings(await poller.poll_once())
        assert set(batch) == {"low", "mid", "high", "inp"}
        assert all(lost(batch, k) for k in batch)
        assert poller.failures == 1 and poller.bus.silent(1)
        # the first no-answer is forgiven, the second puts the unit in backoff: two asked
        assert peer.asked == [0, 20]
        assert await poller.poll_once() is None


async def test_a_status_register_in_a_failed_request_loses_the_points_it_qualifies():
    # the peer answers a register's address: status 101 has bit 0 set (lel's sensor fault), mode
    # 120 is not 999 (no calibration)
    points = [
        {"name": "lel", "table": "holding", "address": 0, "dtype": "uint16"},
        {"name": "o2", "table": "holding", "address": 40, "dtype": "uint16"},
        {"name": "status", "table": "holding", "address": 101, "dtype": "uint16"},
        {"name": "mode", "table": "holding", "address": 120, "dtype": "uint16"},
    ]
    status = (
        {"point": "status", "bit": 0, "quality": "sensor_fault", "applies_to": ["lel"]},
        {"point": "mode", "equals": 999, "quality": "calibration"},  # all points
    )
    peer = IgnoringPeer(set())
    port = await peer.start()

    async def sink(batch: TelemetryBatch) -> None:
        pass

    poller = DevicePoller(device_info(port, points, status), sink, gateway="gw", epoch=1)
    try:
        assert len(poller.requests) == 4
        first = readings(await poller.poll_once())
        assert first == {"lel": (0, Quality.SENSOR_FAULT), "o2": (40, Quality.GOOD)}
        # the status word is not answered: lel's fault is not known, its reading not good
        peer.ignore = {101}
        second = readings(await poller.poll_once())
        assert lost(second, "lel") and good(second, "o2", 40)
        # the mode, which qualifies every point, is not answered: every point is lost (lel was
        # said lost already)
        peer.ignore = {101, 120}
        third = readings(await poller.poll_once())
        assert set(third) == {"o2"} and lost(third, "o2")
        assert poller.failures == 0
    finally:
        await poller.close()
        await peer.stop()


class MalformedPeer(IgnoringPeer):
    """Answers a read that starts at an address in `ignore` with a byte count one register
    short (a well-framed answer that does not fit its request)."""

    def _reply(self, tid: int, unit: int, pdu: bytes) -> bytes | None:
        function, address, count = decode_read_request(pdu)
        self.asked.append(address)
        n = count - 1 if address in self.ignore else count
        data = b"".join((address + i).to_bytes(2, "big") for i in range(n))
        return encode_mbap(tid, unit, bytes((function, len(data))) + data)


async def test_a_malformed_answer_costs_its_requests_points_alone_and_keeps_the_link():
    peer = MalformedPeer({20})
    port = await peer.start()

    async def sink(batch: TelemetryBatch) -> None:
        pass

    poller = DevicePoller(device_info(port, POINTS), sink, gateway="gw", epoch=1)
    try:
        first = readings(await poller.poll_once())
        assert lost(first, "mid")
        assert good(first, "low", 0) and good(first, "high", 40) and good(first, "inp", 5)
        assert not poller.bus.silent(1)
        second = readings(await poller.poll_once())
        assert second == {"low": (0, 0), "high": (40, 0), "inp": (5, 0)}
        assert peer.asked == [0, 20, 40, 5, 0, 40, 5, 20]  # the malformed one went last
        assert len(peer.writers) == 1  # one connection: the link was never dropped
        assert poller.failed_requests == 2 and poller.failures == 0
    finally:
        await poller.close()
        await peer.stop()


async def test_a_block_a_live_unit_never_answers_does_not_slow_its_bus():
    """Unit 1 never answers its block at 20; unit 2 on the same connection keeps its poll rate:
    the block costs one timeout per backoff period (1 s at first), not one per cycle."""
    peer = IgnoringPeer({20})
    port = await peer.start()
    one = device_info(port, POINTS, unit=1, poll_s=0.05)
    two = device_info(port, POINTS[2:], unit=2, poll_s=0.05)  # high and inp: all answered
    bus = ModbusBus(one.spec.modbus)
    sent: dict[str, list[TelemetryBatch]] = {"1": [], "2": []}

    def sink_for(unit: str) -> Callable[[TelemetryBatch], Awaitable[None]]:
        async def sink(batch: TelemetryBatch) -> None:
            sent[unit].append(batch)

        return sink

    pollers = [
        DevicePoller(info, sink_for(unit), gateway="gw", epoch=1, bus=bus)
        for unit, info in (("1", one), ("2", two))
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in pollers]
    try:
        await asyncio.sleep(0.8)  # 16 periods; a timeout (0.2 s) in every one of unit 1's
        # cycles would leave unit 2 about 4 cycles
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        bus.close()
        await peer.stop()
    assert peer.asked.count(20) == 1 and bus.timeouts == 1
    assert pollers[1].cycles >= 10, pollers[1].cycles
    assert all(good(readings(b), "high", 40) for b in sent["2"])
    assert lost(readings(sent["1"][0]), "mid")
    assert all("mid" not in readings(b) for b in sent["1"][1:])
