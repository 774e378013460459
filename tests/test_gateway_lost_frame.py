"""One lost frame is no alarm (over real sockets, the pymodbus simulator). A SIS PLC alone on its
link, polled every 0.5 s: a request it leaves unanswered, having answered its last cycle, is sent
again at once before its points are said comm loss, so one frame lost on the line publishes
nothing but good readings (it raised the device's comm loss and a no-data alarm per point, each
to be acknowledged and disposed of). `retries: 0` keeps the old way; a unit that stays silent is
still comm loss within a poll period and two timeouts (read in one request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

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
PROFILE = DeviceProfile.model_validate(
    {
        "name": "sis-plc",
        "points": [
            {"name": "trip", "table": "holding", "address": 0, "dtype": "uint16"},
            {"name": "pt", "table": "holding", "address": 1, "dtype": "uint16"},
        ],
    }
)
POLL, TIMEOUT = 0.5, 0.2


def sis(port: int, **modbus: Any) -> DeviceInfo:
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
                                    "id": "sis",
                                    "profile": "sis-plc",
                                    "modbus": {
                                        "port": port,
                                        "unit": 1,
                                        "poll_s": POLL,
                                        "timeout_s": TIMEOUT,
                                        **modbus,
                                    },
                                    "sensors": [
                                        {"id": "sis-trip", "point": "trip", "kind": "other"},
                                        {"id": "sis-pt", "point": "pt", "kind": "other"},
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


@pytest.fixture
async def plc() -> AsyncIterator[tuple[ModbusSimServer, SimulatedDevice]]:
    dev = SimulatedDevice(PROFILE, 1, {"trip": Constant(0), "pt": Constant(42)}, float)
    sim = ModbusSimServer([dev])
    await sim.start()
    try:
        yield sim, dev
    finally:
        await sim.stop()


async def cycles(info: DeviceInfo, dev: SimulatedDevice) -> list[TelemetryBatch]:
    """Poll for three cycles, the request of the second lost once."""
    sent: list[TelemetryBatch] = []

    async def sink(batch: TelemetryBatch) -> None:
        sent.append(batch)

    poller = DevicePoller(info, sink, gateway="gw", epoch=1)
    try:
        await poller.poll_once()
        dev.drop(1)
        await poller.poll_once()
        await poller.poll_once()
    finally:
        await poller.close()
    return sent


async def test_one_lost_frame_publishes_no_comm_loss(plc):
    sim, dev = plc
    sent = await cycles(sis(sim.port), dev)
    assert len(sent) == 3
    for batch in sent:
        assert batch.quality.tolist() == [Quality.GOOD, Quality.GOOD], batch
        assert batch.value.tolist() == [0.0, 42.0]
    assert sim.requests_by_unit[1] == 4  # the lost one, sent again at once


async def test_retries_0_says_comm_loss_at_the_first_lost_frame(plc):
    sim, dev = plc
    sent = await cycles(sis(sim.port, retries=0), dev)
    assert [b.quality.tolist() for b in sent] == [
        [Quality.GOOD, Quality.GOOD],
        [Quality.COMM_LOSS, Quality.COMM_LOSS],
        [Quality.GOOD, Quality.GOOD],
    ]


async def test_a_silent_unit_is_comm_loss_within_a_period_and_two_timeouts(plc):
    sim, dev = plc
    sent: list[tuple[float, TelemetryBatch]] = []
    loop = asyncio.get_running_loop()

    async def sink(batch: TelemetryBatch) -> None:
        sent.append((loop.time(), batch))

    poller = DevicePoller(sis(sim.port), sink, gateway="gw", epoch=1)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        async with asyncio.timeout(5.0):
            while not sent:
                await asyncio.sleep(0.01)
        dev.online = False
        died = loop.time()
        async with asyncio.timeout(5.0):
            while sent[-1][1].quality[0] != Quality.COMM_LOSS:
                await asyncio.sleep(0.01)
        took = sent[-1][0] - died
    finally:
        stop.set()
        await task
    assert took <= POLL + 2 * TIMEOUT + 0.15, took
    assert sent[-1][1].quality.tolist() == [Quality.COMM_LOSS, Quality.COMM_LOSS]
