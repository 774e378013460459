"""The whole path over real sockets: pymodbus simulator -> gateway -> mosquitto -> ingest ->
alert core -> store -> HTTP API, driven by the face-methane scenario in compressed time."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from gateway.runner import Gateway
from simulators.modbus import ModbusSimServer, SimulatedDevice
from simulators.scenario import methane_profile
from simulators.signals import Constant
from telemetry.topics import TopicLayout

from e2e_helpers import (
    HubAccess,
    TelemetryWatch,
    eventually,
    get_json,
    hub_ready,
    mine_registry,
)

POLL_S = 0.2
SCALE = 0.2  # the one-minute scenario plays in 12 s


def crossing(profile_points: tuple[tuple[float, float], ...], level: float, rising: bool) -> float:
    """Scenario time at which the piecewise-linear signal crosses `level`."""
    for (t0, v0), (t1, v1) in itertools.pairwise(profile_points):
        if (rising and v0 < level <= v1) or (not rising and v0 > level >= v1):
            return t0 + (level - v0) / (v1 - v0) * (t1 - t0)
    raise AssertionError(f"the profile never crosses {level}")


@pytest.mark.slow
async def test_methane_scenario_end_to_end(mosquitto, tmp_path):
    profile = methane_profile(scale_s=SCALE)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    t0_wall_ms = time.time_ns() // 1_000_000

    def clock() -> float:
        return loop.time() - t0

    probe = mine_registry(0, POLL_S)
    device_info = next(iter(probe.devices.values()))
    sim = ModbusSimServer(
        [
            SimulatedDevice(
                device_info.profile,
                1,
                {
                    "ch4_t0": Constant(0.4),
                    "ch4_t1": profile,
                    "ch4_t2": Constant(0.3),
                    "co": Constant(5),
                    "feed": Constant(1),
                },
                clock,
            )
        ]
    )
    await sim.start()
    registry = mine_registry(sim.port, POLL_S)
    access = HubAccess()
    hub = access.hub(registry, tmp_path / "hub", mosquitto.port)
    gw = Gateway(
        registry,
        tenant="north-coal",
        gateway="gw1",
        broker_host="127.0.0.1",
        broker_port=mosquitto.port,
        layout=TopicLayout(),
        spool_dir=tmp_path / "spool",
    )
    hub_stop, gw_stop = asyncio.Event(), asyncio.Event()
    hub_task = asyncio.create_task(hub.run(hub_stop))
    gw_task: asyncio.Task[None] | None = None
    try:
        await eventually(lambda: hub_ready(hub), 10, "the hub to subscribe and serve")
        watch = TelemetryWatch(mosquitto.port)  # what reaches the broker
        await watch.__aenter__()
        gw_task = asyncio.create_task(gw.run(gw_stop))
        async with access.client() as client:

            async def cleared_alarm():
                alarms = await get_json(client, "/api/v1/alarms", sensor="ch4-t1")
                return [a for a in alarms if a["state"] == "cleared"]

            alarms = await eventually(cleared_alarm, 30, "the T1 methane alarm to clear")
            latest = await get_json(client, "/api/v1/sensors/ch4-t1/latest")
            assert latest["quality_name"] == "good"
            assert latest["value"] < 1.0
        gw_stop.set()
        await gw_task
        await watch.quiet()
        await watch.__aexit__(None, None, None)

        # count by sequence number: every batch the gateway published is in the store
        published = watch.published["kj-sub-3"]
        assert len(published) >= 10

        async def all_stored():
            stored = await hub.store.count_by_seq("north-coal", "kj-sub-3")
            return stored if stored == dict(published) else None

        await eventually(all_stored, 10, "every published reading to be stored")
    finally:
        gw_stop.set()
        if gw_task is not None:
            await gw_task
        hub_stop.set()
        await hub_task
        await sim.stop()

    assert len(alarms) == 1, alarms
    alarm = alarms[0]
    assert alarm["rule"] == "coal-methane.face-t1"
    assert alarm["peak_level"] == 2
    kinds = [(e["kind"], e["level_name"]) for e in alarm["events"]]
    assert kinds == [("raised", "alarm"), ("escalated", "power_cut"), ("cleared", "normal")]
    raised, escalated, cleared = alarm["events"]
    poll_ms = POLL_S * 1000
    # the simulator rounds to 0.01 % (raw uint16): a value reads 1.00 up to 0.005 % early
    slack_ms = 60
    up_1 = t0_wall_ms + crossing(profile.points, 1.0, rising=True) * 1000
    up_15 = t0_wall_ms + crossing(profile.points, 1.5, rising=True) * 1000
    down_1 = t0_wall_ms + crossing(profile.points, 1.0, rising=False) * 1000
    assert up_1 - slack_ms <= raised["ts"] <= up_1 + poll_ms + slack_ms
    assert raised["value"] >= 1.0
    assert up_15 - slack_ms <= escalated["ts"] <= up_15 + poll_ms + slack_ms
    assert escalated["value"] >= 1.5
    assert down_1 - slack_ms <= cleared["ts"] <= down_1 + poll_ms + slack_ms
    assert cleared["value"] < 1.0
    assert alarm["started_ts"] == raised["ts"] and alarm["ended_ts"] == cleared["ts"]
    assert all(e["arrival"] >= e["ts"] for e in alarm["events"])
