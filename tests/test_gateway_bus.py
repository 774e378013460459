"""Buses over real sockets: coalesced reads counted by the server, a dead unit that does not stall
the others, RTU over TCP, report-on-change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from gateway.bus import ModbusBus
from gateway.plan import compile_plan
from gateway.poller import DevicePoller
from hazardhub.settings import load_profiles
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.signals import Constant, Piecewise
from telemetry.codec import TelemetryBatch
from telemetry.config import DeviceProfile, HubConfig
from telemetry.registry import Registry, build_registry

ROOT = Path(__file__).resolve().parent.parent
SCATTERED = DeviceProfile(
    name="scattered-60",
    points=tuple(
        {
            "name": f"p{i}",
            "table": "holding" if i < 45 else "input",
            "address": (i % 45) * 6 + (i % 4) + (500 if i % 45 > 30 else 0),
            "dtype": "uint16",
        }
        for i in range(60)
    ),
)


def registry(devices: list[dict], profiles: tuple[DeviceProfile, ...] = ()) -> Registry:
    config = HubConfig.model_validate(
        {
            "tenants": [{"id": "t", "sites": [{"id": "s", "devices": devices}]}],
            "device_profiles": [p.model_dump() for p in profiles],
        }
    )
    shipped, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, shipped, packs)


def sensors_for(profile: DeviceProfile) -> list[dict]:
    return [
        {"id": f"{profile.name}-{p.name}-{{u}}", "point": p.name, "kind": "other"}
        for p in profile.points
    ]


async def test_coalesced_reads_match_the_plan(tmp_path):
    sim_dev = SimulatedDevice(SCATTERED, 1, {"p5": Constant(55)}, lambda: 0.0)
    sim = ModbusSimServer([sim_dev])
    await sim.start()
    sensors = [{"id": f"x{i}", "point": f"p{i}", "kind": "other"} for i in range(60)]
    reg = registry(
        [
            {
                "id": "d1",
                "profile": "scattered-60",
                "sensors": sensors,
                "modbus": {"port": sim.port, "unit": 1, "timeout_s": 0.5},
            }
        ],
        (SCATTERED,),
    )
    info = next(iter(reg.devices.values()))
    plan = compile_plan(info.points)
    # holding 0-183 needs two requests (125-register limit), 686-765 one, the input registers one
    assert len(plan) == 4
    sent: list[TelemetryBatch] = []

    async def sink(b: TelemetryBatch) -> None:
        sent.append(b)

    poller = DevicePoller(info, sink, gateway="gw", epoch=1)
    try:
        for _ in range(5):
            await poller.poll_once()
    finally:
        await poller.close()
        await sim.stop()
    assert sim.requests == 5 * len(plan) == poller.bus.requests
    assert len(sent) == 5 and len(sent[0]) == 60
    assert sent[0].value[sent[0].keys.index("p5")] == 55


async def test_a_dead_unit_does_not_stall_the_others_on_its_bus():
    profiles, _ = load_profiles(ROOT / "profiles")
    prof = next(p for p in profiles if p.name == "interlock-block")
    devs = [SimulatedDevice(prof, u, {"state": Constant(u)}, lambda: 0.0) for u in (1, 2, 3)]
    devs[2].online = False
    sim = ModbusSimServer(devs)
    await sim.start()
    poll, timeout = 0.3, 0.2
    reg = registry(
        [
            {
                "id": f"u{u}",
                "profile": "interlock-block",
                "sensors": [{"id": f"s{u}", "point": "state", "kind": "interlock"}],
                "modbus": {"port": sim.port, "unit": u, "poll_s": poll, "timeout_s": timeout},
            }
            for u in (1, 2, 3)
        ]
    )
    infos = sorted(reg.devices.values(), key=lambda d: d.spec.id)
    bus = ModbusBus(infos[0].spec.modbus)
    arrivals: dict[str, list[float]] = {"u1": [], "u2": [], "u3": []}
    loop = asyncio.get_running_loop()

    def sink_for(name: str):
        async def sink(b: TelemetryBatch) -> None:
            arrivals[name].append(loop.time())

        return sink

    stop = asyncio.Event()
    pollers = [DevicePoller(d, sink_for(d.spec.id), gateway="gw", epoch=1, bus=bus) for d in infos]
    tasks = [asyncio.create_task(p.run(stop)) for p in pollers]
    await asyncio.sleep(4.0)
    stop.set()
    await asyncio.gather(*tasks)
    bus.close()
    await sim.stop()
    for name in ("u1", "u2"):
        gaps = np.diff(arrivals[name])
        assert len(gaps) >= 10, arrivals[name]
        assert gaps.max() <= 1.2 * poll + timeout, (name, gaps.max())
    assert len(arrivals["u3"]) == 1  # its comm loss, once
    # the dead unit was asked far less than once per cycle thanks to the backoff
    assert sim.requests_by_unit[3] < 4.0 / poll / 2


async def test_rtu_over_tcp():
    profiles, _ = load_profiles(ROOT / "profiles")
    prof = next(p for p in profiles if p.name == "tank-rtu")
    sim = ModbusSimServer(
        [SimulatedDevice(prof, 7, {"level": Constant(6.25)}, lambda: 0.0)], framer="rtu"
    )
    await sim.start()
    reg = registry(
        [
            {
                "id": "tank",
                "profile": "tank-rtu",
                "sensors": [{"id": "lvl", "point": "level", "kind": "level"}],
                "modbus": {
                    "transport": "rtu-over-tcp",
                    "port": sim.port,
                    "unit": 7,
                    "timeout_s": 0.5,
                },
            }
        ]
    )
    sent: list[TelemetryBatch] = []

    async def sink(b: TelemetryBatch) -> None:
        sent.append(b)

    poller = DevicePoller(next(iter(reg.devices.values())), sink, gateway="gw", epoch=1)
    try:
        batch = await poller.poll_once()
    finally:
        await poller.close()
        await sim.stop()
    assert batch is not None and batch.value.tolist() == [6.25]


async def test_report_on_change_with_deadband_and_max_silent_interval():
    profiles, _ = load_profiles(ROOT / "profiles")
    prof = next(p for p in profiles if p.name == "coal-substation")
    now = [0.0]
    sim = ModbusSimServer(
        [
            SimulatedDevice(
                prof,
                1,
                {
                    "ch4_t0": Piecewise(
                        ((0, 0.30), (2, 0.30), (2.01, 0.32), (4, 0.32), (4.01, 0.50))
                    ),
                    "co": Constant(10),
                },
                lambda: now[0],
            )
        ]
    )
    await sim.start()
    reg = registry(
        [
            {
                "id": "sub",
                "profile": "coal-substation",
                "report": {"on_change": True, "max_silent_s": 5},
                "sensors": [
                    {"id": "t0", "point": "ch4_t0", "kind": "methane", "deadband": 0.05},
                    {"id": "co", "point": "co", "kind": "co", "deadband": 1},
                ],
                "modbus": {"port": sim.port, "timeout_s": 0.5},
            }
        ]
    )
    wall = [0]
    sent: list[TelemetryBatch] = []

    async def sink(b: TelemetryBatch) -> None:
        sent.append(b)

    poller = DevicePoller(
        next(iter(reg.devices.values())), sink, gateway="gw", epoch=1, clock_ms=lambda: wall[0]
    )
    try:
        for t in range(8):
            now[0], wall[0] = float(t), t * 1000
            await poller.poll_once()
    finally:
        await poller.close()
        await sim.stop()
    got = [(int(b.ts[0]) // 1000, sorted(b.keys[k] for k in b.key)) for b in sent]
    # t=0 first values; t=2.x..3 moved 0.02 < deadband: silent; t=5 moved 0.18: sent;
    # t=5 is also 5 s after t=0, so co is re-sent as a heartbeat
    assert got == [(0, ["ch4_t0", "co"]), (5, ["ch4_t0", "co"])]
    assert [b.seq for b in sent] == [0, 1]
