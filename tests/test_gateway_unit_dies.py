"""A unit that dies in the middle of a cycle (over real sockets, the pymodbus simulator): once two
requests it answered when last asked go unanswered in a row after it answered in this cycle, it
is down: its other requests are not sent this cycle (their points comm loss), none of them is put
in a backoff of its own, and the next cycle probes it. A block that a live unit never answers
still goes in its own backoff (`test_gateway_partial`)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from gateway.bus import ModbusBus
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
# four blocks, four requests a cycle
PROFILE = DeviceProfile.model_validate(
    {
        "name": "four-blocks",
        "points": [
            {"name": "low", "table": "holding", "address": 0, "dtype": "uint16"},
            {"name": "mid", "table": "holding", "address": 20, "dtype": "uint16"},
            {"name": "high", "table": "holding", "address": 40, "dtype": "uint16"},
            {"name": "inp", "table": "input", "address": 5, "dtype": "uint16"},
        ],
    }
)
VALUES = {"low": 1.0, "mid": 2.0, "high": 3.0, "inp": 4.0}
TIMEOUT = 0.2


def device_info(port: int, unit: int, poll_s: float = 1.0) -> DeviceInfo:
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
                                    "profile": "four-blocks",
                                    "modbus": {
                                        "port": port,
                                        "unit": unit,
                                        "timeout_s": TIMEOUT,
                                        "poll_s": poll_s,
                                    },
                                    "sensors": [
                                        {"id": f"u{unit}-{p}", "point": p, "kind": "other"}
                                        for p in VALUES
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


ALL_GOOD = {k: (v, Quality.GOOD) for k, v in VALUES.items()}


@pytest.fixture
async def units() -> AsyncIterator[tuple[ModbusSimServer, list[SimulatedDevice]]]:
    devices = [
        SimulatedDevice(PROFILE, u, {k: Constant(v) for k, v in VALUES.items()}, float)
        for u in (1, 2)
    ]
    sim = ModbusSimServer(devices)
    await sim.start()
    try:
        yield sim, devices
    finally:
        await sim.stop()


async def test_a_unit_that_dies_mid_cycle_costs_three_timeouts_and_no_block_backoff(units):
    sim, (dev, _) = units

    async def sink(batch: TelemetryBatch) -> None:
        pass

    poller = DevicePoller(device_info(sim.port, 1), sink, gateway="gw", epoch=1)
    bus = poller.bus
    try:
        assert readings(await poller.poll_once()) == ALL_GOOD
        dev.die_after(1)  # answers the cycle's first request, then nothing
        loop = asyncio.get_running_loop()
        started = loop.time()
        dying = readings(await poller.poll_once())
        took = loop.time() - started
        # the first read is kept; the others are comm loss
        assert dying["low"] == (1.0, Quality.GOOD)
        assert all(lost(dying[k]) for k in ("mid", "high", "inp"))
        # the first unanswered one is sent again at once (a lost frame, as far as is known);
        # two unanswered in a row: down; the fourth request was not sent
        assert sim.requests_by_unit[1] == 4 + 4 and bus.timeouts == 3
        assert took < 4 * TIMEOUT, took
        assert poller.failures == 0 and not bus.silent(1)
        # the next cycle probes it: one request, unanswered, and the unit is in backoff
        probe = readings(await poller.poll_once())
        assert probe.keys() == {"low"} and lost(probe["low"])
        assert sim.requests_by_unit[1] == 9 and bus.timeouts == 4 and bus.silent(1)
        assert poller.failures == 1
        # it comes back: once its backoff is over (cleared here, not waited for), every block is
        # read at once, none held back by a backoff of its own
        dev.online = True
        bus._silent_until.clear()
        assert readings(await poller.poll_once()) == ALL_GOOD
        assert sim.requests_by_unit[1] == 13
    finally:
        await poller.close()


async def test_a_dying_unit_costs_its_bus_neighbour_little(units):
    """Unit 1 dies in its third cycle; unit 2 on the same connection polls on: unit 1 costs it
    three timeouts (the first re-sent once), then one for the probe, then one per backoff
    period."""
    sim, (dev, _) = units
    one, two = device_info(sim.port, 1, 0.1), device_info(sim.port, 2, 0.1)
    bus = ModbusBus(one.spec.modbus)
    sent: dict[str, list[TelemetryBatch]] = {"u1": [], "u2": []}

    def sink_for(name: str) -> Callable[[TelemetryBatch], Awaitable[None]]:
        async def sink(batch: TelemetryBatch) -> None:
            sent[name].append(batch)

        return sink

    pollers = [
        DevicePoller(d, sink_for(d.spec.id), gateway="gw", epoch=1, bus=bus) for d in (one, two)
    ]
    dev.die_after(2 * 4 + 1)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in pollers]
    try:
        async with asyncio.timeout(5.0):
            while not bus.silent(1):  # died, probed, in backoff
                await asyncio.sleep(0.02)
        before = len(sent["u2"])
        await asyncio.sleep(0.7)  # within unit 1's first backoff (1 s): unit 2 polls on alone
        alone = len(sent["u2"]) - before
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        bus.close()
    # unit 1: three timeouts as it died, one probe the cycle after (then backoff: 1 s)
    assert bus.timeouts == 4, bus.timeouts
    assert sim.requests_by_unit[1] == 9 + 3 + 1
    assert all(readings(b) == ALL_GOOD for b in sent["u2"])
    assert alone >= 4, alone  # 7 at its 0.1 s period
