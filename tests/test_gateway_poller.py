"""The poller over real sockets: values, event time, comm loss once and never a stale value."""

from __future__ import annotations

import asyncio
import math

import numpy as np

from gateway.poller import DevicePoller
from gateway.runner import spread_phase
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant, Ramp
from telemetry.codec import TelemetryBatch
from telemetry.quality import Quality

from e2e_helpers import mine_registry


async def test_poll_values_comm_loss_once_and_recovery():
    now = [0.0]
    probe = mine_registry(0, 0.1)
    profile = next(iter(probe.devices.values())).profile
    device = SimulatedDevice(
        profile,
        1,
        {
            "ch4_t0": Constant(0.42),
            "ch4_t1": Ramp(0, 10, 0.2, 1.2),
            "co": Constant(17),
            "feed": Constant(1),
        },
        lambda: now[0],
    )
    sim = ModbusSimServer([device])
    await sim.start()
    reg = mine_registry(sim.port, 0.1)
    info = next(iter(reg.devices.values()))
    sent: list[TelemetryBatch] = []

    async def sink(batch: TelemetryBatch) -> None:
        sent.append(batch)

    wall = [1_000_000]
    poller = DevicePoller(info, sink, gateway="gw1", epoch=42, clock_ms=lambda: wall[0])
    try:
        # two requests: input registers 0..3 with the fault register 8 (gap 4), discrete input 0
        assert [(r.table, r.address, r.count) for r in poller.requests] == [
            ("discrete", 0, 1),
            ("input", 0, 9),
        ]
        now[0] = 5.0
        b0 = await poller.poll_once()
        assert b0 is not None
        values = dict(zip(b0.keys, b0.value.tolist(), strict=True))
        assert values == {"ch4_t0": 0.42, "ch4_t1": 0.7, "ch4_t2": 0.0, "co": 17.0, "feed": 1.0}
        assert (b0.quality == Quality.GOOD).all() and (b0.ts == 1_000_000).all()
        assert (b0.epoch, b0.seq) == (42, 0)

        device.online = False
        wall[0] = 2_000_000
        lost = await poller.poll_once()
        assert lost is not None and lost.seq == 1
        assert (lost.quality == Quality.COMM_LOSS).all()
        assert all(math.isnan(v) for v in lost.value.tolist())
        assert (lost.ts == 2_000_000).all()
        assert await poller.poll_once() is None  # once, then nothing while it stays silent

        device.online = True
        now[0] = 10.0
        # the silent unit is in backoff (1 s): polls fail at once until it is asked again
        assert poller.bus.silent(1)
        back = None
        for _ in range(40):
            back = await poller.poll_once()
            if back is not None:
                break
            await asyncio.sleep(0.1)
        assert back is not None and back.seq == 2
        assert (back.quality == Quality.GOOD).all()
        assert np.isclose(back.value[back.keys.index("ch4_t1")], 1.2)
        assert [b.seq for b in sent] == [0, 1, 2]
    finally:
        await poller.close()
        await sim.stop()


def test_first_cycles_spread_in_groups_over_at_most_a_second():
    assert [spread_phase(i, 4, 10.0) for i in range(4)] == [0.0, 0.25, 0.5, 0.75]
    assert [spread_phase(i, 2, 0.2) for i in range(2)] == [0.0, 0.1]
    assert spread_phase(0, 0, 1.0) == 0.0
    # more devices than groups: they start in four groups
    assert [spread_phase(i, 8, 1.0) for i in range(8)] == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75]


async def test_a_phase_delays_only_the_first_cycle_and_lateness_counts_overruns():
    probe = mine_registry(0, 0.2)
    profile = next(iter(probe.devices.values())).profile
    sim = ModbusSimServer([SimulatedDevice(profile, 1, {"co": Constant(5)}, lambda: 0.0)])
    await sim.start()
    info = next(iter(mine_registry(sim.port, 0.2).devices.values()))
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    async def sink(batch: TelemetryBatch) -> None:
        arrivals.append(loop.time())
        if len(arrivals) == 3:
            await asyncio.sleep(0.5)  # an overrun of 0.3 s past the next slot

    poller = DevicePoller(info, sink, gateway="gw", epoch=1, phase_s=0.15)
    stop = asyncio.Event()
    started = loop.time()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(1.6)
    stop.set()
    await task
    await sim.stop()
    assert 0.14 <= arrivals[0] - started < 0.45
    gaps = np.diff(arrivals)
    assert all(0.1 < g < 0.4 for g in gaps[:2]), gaps
    late = sorted(poller.lateness_s)
    assert 0.25 < late[-1] < 0.5  # the cycle after the overrun, late by it
    assert late[-2] < 0.15  # every other cycle about on time
