"""A vehicle's own link in the JT/T 808 fleet: a heartbeat (0x0002) when it has nothing else to
send, so that the platform does not close it as idle (the fleet never sent one), and the
scenario mode `link_loss`: ONE vehicle's TCP link dropped for a while (a blind area), its fixes
kept and sent as 0x0704 once back, the other vehicles untouched (`offline` kept the connection
open and silent). Real gateway, real Mosquitto."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from jt808_helpers import VEHICLE_TOPIC, make_gateway, positions_on, running

from simulators.fleet import Jt808Fleet, SimulatedVehicle
from simulators.scenario_spec import ScenarioSpec
from simulators.signals import Constant
from simulators.timeline import compile_scenario

from e2e_helpers import eventually, tanker_registry

ROUTE = ((31.0, 120.0), (31.01, 120.01))


async def _now(value: bool) -> bool:
    return value


def _vehicles() -> list[tuple[SimulatedVehicle, str, str]]:
    return [
        (SimulatedVehicle("chem-logistics", f"tanker-0{k}", ROUTE, Constant(40.0)), phone, plate)
        for k, phone, plate in ((1, "13800000001", "苏A·D1234"), (2, "13800000002", "苏A·D5678"))
    ]


async def test_an_idle_terminal_sends_heartbeats_and_keeps_its_connection(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
) -> None:
    gw = make_gateway(
        tanker_registry(tmp_path), mosquitto.port, tmp_path / "jt808", idle_timeout_s=1.0
    )
    async with running(gw, commands=True) as (host, port):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fleet = Jt808Fleet(
            _vehicles(),
            host=host,
            port=port,
            clock=lambda: loop.time() - t0,
            start_wall_ms=int(time.time() * 1000),
            period_s=0.1,
            end_s=0.2,  # the drive is over at once: nothing more to send but heartbeats
            heartbeat_s=0.4,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(fleet.run(stop))
        try:
            await eventually(lambda: _now(len(gw.server.by_vehicle) == 2), 10, "both in")
            await asyncio.sleep(3.0)  # three idle timeouts
            assert len(gw.server.by_vehicle) == 2
        finally:
            stop.set()
            await asyncio.wait_for(run, 10)
    assert gw.server.counters["idle_closed"] == 0
    assert fleet.logins == 2
    assert fleet.heartbeats >= 2 * 5  # one every 0.4 s per terminal, at least
    assert fleet.sent == 2 * 3  # t = 0, 0.1, 0.2


def test_link_loss_is_a_vehicle_mode(tmp_path: Path) -> None:
    reg = tanker_registry(tmp_path)
    spec = ScenarioSpec.model_validate(
        {
            "name": "x",
            "duration_s": 60,
            "events": [{"at_s": 10, "vehicle": "tanker-01", "mode": "link_loss", "for_s": 5}],
        }
    )
    modes = compile_scenario(spec, reg).modes
    assert [(m.t_s, m.device, m.mode) for m in modes] == [
        (10, "vehicle:tanker-01", "link_loss"),
        (15, "vehicle:tanker-01", None),
    ]
    with pytest.raises(ValueError, match="applies to a vehicle"):
        ScenarioSpec.model_validate(
            {
                "name": "x",
                "duration_s": 1,
                "events": [{"at_s": 1, "device": "d", "mode": "link_loss"}],
            }
        )


async def test_one_vehicles_link_lost_for_a_while_comes_back_with_its_blind_area(  # type: ignore[no-untyped-def]
    mosquitto, tmp_path: Path
) -> None:
    gw = make_gateway(tanker_registry(tmp_path), mosquitto.port, tmp_path / "jt808")
    vehicles = _vehicles()
    lost = vehicles[0][0]
    # 10x: a fix a scenario second (a JT/T 808 time has whole seconds) every 0.1 s
    lost.modes = ((10.0, "link_loss"), (25.0, None))  # as the scenario runner gives them
    epoch = (int(time.time()) - 60) * 1000
    for v, _, _ in vehicles:
        v.epoch_ms = epoch  # stamped on the scenario clock
    async with positions_on(mosquitto.port) as got, running(gw, commands=True) as (host, port):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fleet = Jt808Fleet(
            vehicles,
            host=host,
            port=port,
            clock=lambda: (loop.time() - t0) * 10,
            start_wall_ms=int(time.time() * 1000),
            period_s=0.1,
            accel=10.0,
            end_s=35.0,
        )
        stop = asyncio.Event()
        run = asyncio.create_task(fleet.run(stop))
        server = gw.server
        try:
            await eventually(lambda: _now(len(server.by_vehicle) == 2), 10, "both in")
            await eventually(lambda: _now(len(server.by_vehicle) == 1), 5, "tanker-01 out")
            assert [ref.vehicle for ref in server.by_vehicle] == ["tanker-02"]
            assert fleet.waiting >= 1  # its fixes kept meanwhile
            await eventually(lambda: _now(len(server.by_vehicle) == 2), 5, "tanker-01 back")
            await eventually(lambda: _now(fleet.waiting == 0), 5, "its blind area sent")
            await asyncio.sleep(1.5)  # the drive's end
        finally:
            stop.set()
            await asyncio.wait_for(run, 10)
        await eventually(
            lambda: _now(sum(len(v) for v in got.values()) >= fleet.sent), 5, "all on the broker"
        )
    assert fleet.links_dropped == 1 and fleet.logins == 3 and fleet.registrations == 2
    assert server.counters["authenticated"] == 3
    assert fleet.backfills >= 1  # the blind area as 0x0704
    for vehicle in ("tanker-01", "tanker-02"):
        stamps = sorted({int(p["ts"]) for p in got[VEHICLE_TOPIC.format(vehicle)]})
        assert stamps == [epoch + k * 1000 for k in range(36)], vehicle  # t = 0 .. 35: all


async def test_over_mqtt_a_vehicles_link_loss_holds_its_fixes_until_it_ends(  # type: ignore[no-untyped-def]
    mosquitto,
) -> None:
    from simulators.fleet import FleetPublisher
    from telemetry.topics import TopicLayout

    vehicles = _vehicles()
    lost = vehicles[0][0]
    lost.modes = ((10.0, "link_loss"), (25.0, None))
    epoch = (int(time.time()) - 60) * 1000
    for v, _, _ in vehicles:
        v.epoch_ms = epoch
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    fleet = FleetPublisher(
        [v for v, _, _ in vehicles],
        host="127.0.0.1",
        port=mosquitto.port,
        layout=TopicLayout(),
        clock=lambda: (loop.time() - t0) * 10,
        start_wall_ms=int(time.time() * 1000),
        period_s=0.1,
        accel=10.0,
        end_s=35.0,
    )
    async with positions_on(mosquitto.port) as got:
        stop = asyncio.Event()
        run = asyncio.create_task(fleet.run(stop))
        try:
            await asyncio.sleep(2.2)  # scenario 22 s: tanker-01 out since 10 s
            during = {int(p["ts"]) for p in got.get(VEHICLE_TOPIC.format("tanker-01"), [])}
            assert max(during) <= epoch + 10_000  # nothing of its blind area yet
            assert len(got[VEHICLE_TOPIC.format("tanker-02")]) >= 20  # the other goes on
            await asyncio.sleep(1.6)
        finally:
            stop.set()
            await asyncio.wait_for(run, 10)
        await eventually(
            lambda: _now(sum(len(v) for v in got.values()) >= fleet.sent), 5, "all on the broker"
        )
    for vehicle in ("tanker-01", "tanker-02"):
        stamps = sorted({int(p["ts"]) for p in got[VEHICLE_TOPIC.format(vehicle)]})
        assert stamps == [epoch + k * 1000 for k in range(36)], vehicle
    assert fleet.backfills >= 1
