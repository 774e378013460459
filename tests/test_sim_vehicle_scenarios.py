"""Fleet scenarios: a scenario `start` (local time of t=0), scenario-clock stamps under time
acceleration, detours off the route with their ground truth, and the shipped fleet scenarios
played through a real hub (night ban, corridor) against that truth."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math
import secrets
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from api.auth import hash_key
from hazardhub.hub import Hub, HubSettings
from hazardhub.settings import load
from simulators.farm import ScenarioRunner
from simulators.fleet import FleetPublisher, SimulatedVehicle, attach_scenario
from simulators.signals import Constant
from simulators.timeline import CompiledScenario, ScenarioSpec, compile_scenario
from telemetry.config import ApiKeySpec
from telemetry.registry import Registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, get_json, running_hub
from services import free_port

ROOT = Path(__file__).resolve().parent.parent
FLEET = ROOT / "examples" / "scenarios" / "fleet"
HUB_CONFIG = FLEET / "fleet-hub.yaml"
CST = dt.timezone(dt.timedelta(hours=8))
NOW_MS = 1_795_946_000_000  # 2026-11-29 17:53:20 China Standard Time
SCENARIO_FILES = sorted(p for p in FLEET.glob("*.yaml") if p != HUB_CONFIG)


def scenario(name: str) -> ScenarioSpec:
    path = FLEET / f"{name}.yaml"
    return parse_document(path.read_text(), ScenarioSpec, str(path))


def registry() -> Registry:
    return load(HUB_CONFIG).registry()


def vehicles(compiled: CompiledScenario, reg: Registry) -> dict[str, SimulatedVehicle]:
    out = {}
    for v in reg.vehicles.values():
        route = compiled.spec.routes.get(v.spec.id) or ((32.0, 118.8), (32.5, 119.8))
        out[v.spec.id] = SimulatedVehicle(
            v.tenant, v.spec.id, route, compiled.vehicle_speeds[v.spec.id]
        )
    return out


def drive(compiled: CompiledScenario, reg: Registry, times: Sequence[float], accel: float):
    """The records every vehicle makes at `times`, played at `accel`."""
    fleet = vehicles(compiled, reg)
    attach_scenario(compiled, list(fleet.values()), NOW_MS)
    return {vid: [v.record(t, NOW_MS, accel) for t in times] for vid, v in fleet.items()}


def metres_off(route: Sequence[tuple[float, float]], lat: float, lon: float) -> float:
    """Distance from a point to a polyline (equirectangular about the point)."""
    kx = 111_320.0 * math.cos(math.radians(lat))
    ky = 111_320.0
    best = math.inf
    for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(route):
        ax, ay = (a_lon - lon) * kx, (a_lat - lat) * ky
        bx, by = (b_lon - lon) * kx, (b_lat - lat) * ky
        dx, dy = bx - ax, by - ay
        f = max(0.0, min(1.0, -(ax * dx + ay * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(ax + f * dx, ay + f * dy))
    return best


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.stem for p in SCENARIO_FILES])
def test_shipped_fleet_scenarios_compile_against_the_fleet_hub_config(path):
    spec = parse_document(path.read_text(), ScenarioSpec, str(path))
    compiled = compile_scenario(spec, registry())
    assert spec.start is not None  # fleet rules judge event times: stamp on the scenario clock
    assert set(spec.routes) <= set(compiled.vehicle_speeds)


def test_start_as_a_date_time_or_the_latest_past_time_of_day():
    spec = ScenarioSpec(name="x", duration_s=600, start="2026-03-03T02:50:00+08:00")
    assert spec.start_ms(NOW_MS) == round(
        dt.datetime(2026, 3, 3, 2, 50, tzinfo=CST).timestamp() * 1000
    )
    spec = scenario("coach-at-0300")
    t0 = spec.start_ms(NOW_MS)
    local = dt.datetime.fromtimestamp(t0 / 1000, CST)
    assert (local.hour, local.minute, local.second) == (2, 58, 0)
    assert t0 + spec.duration_s * 1000 <= NOW_MS < t0 + spec.duration_s * 1000 + 86_400_000
    # a time of day whose scenario would still be running now goes back a day
    late = ScenarioSpec(name="x", duration_s=3600, start="17:00:00+08:00")
    assert dt.datetime.fromtimestamp(late.start_ms(NOW_MS) / 1000, CST).day == 28
    assert ScenarioSpec(name="x", duration_s=1).start_ms(NOW_MS) == NOW_MS
    with pytest.raises(ValueError, match="UTC offset"):
        ScenarioSpec(name="x", duration_s=1, start="02:50:00")


def test_scenario_clock_stamps_do_not_depend_on_the_acceleration():
    reg = registry()
    compiled = compile_scenario(scenario("coach-at-0300"), reg)
    t0 = compiled.spec.start_ms(NOW_MS)
    times = [0.0, 1.0, 121.5, 122.0, 299.0]
    slow, fast = drive(compiled, reg, times, 1.0), drive(compiled, reg, times, 60.0)
    assert slow == fast
    assert [r["ts"] for r in fast["coach-07"]] == [t0 + round(t * 1000) for t in times]
    # without a start: wall stamps, compressed by the acceleration (the Modbus scenarios' way)
    legacy = compile_scenario(scenario("coach-at-0300").model_copy(update={"start": None}), reg)
    walls = drive(legacy, reg, [0.0, 60.0], 60.0)["coach-07"]
    assert [r["ts"] for r in walls] == [NOW_MS, NOW_MS + 1000]


def test_night_ban_truth_is_the_first_moving_fix_after_three():
    compiled = compile_scenario(scenario("coach-at-0300"), registry())
    t_move = compiled.first_crossing("coach-07.speed", 5.0 + 1e-9)
    assert t_move == pytest.approx(121.67, abs=0.02)
    assert compiled.value("coach-07.speed", 119.0) == 0
    start = dt.datetime.fromtimestamp(compiled.spec.start_ms(NOW_MS) / 1000 + t_move, CST)
    assert (start.hour, start.minute) == (3, 0)


def test_tired_coach_drives_four_hours_ten_without_a_rest():
    compiled = compile_scenario(scenario("coach-driven-tired"), registry())
    t_move = compiled.first_crossing("coach-07.speed", 5.0 + 1e-9, step_s=0.05)
    assert t_move is not None and t_move < 5
    assert compiled.value("coach-07.speed", 15_000) == 80
    assert compiled.value("coach-07.speed", 15_060) == 0
    assert 15_000 - t_move >= 4 * 3600 + 10 * 60 - 5
    # a closed loop: the position never jumps when the route starts over
    route = compiled.spec.routes["coach-07"]
    assert route[0] == route[-1]


def test_detour_positions_and_truth_are_deterministic_and_consistent():
    reg = registry()
    spec = scenario("tanker-leaves-corridor")
    compiled = compile_scenario(spec, reg)
    assert compiled.off_route("tanker-01", 1500) == ((180.0, 360.0),)
    assert compiled.off_route("tanker-01", 3000) == ()
    assert compiled.off_route("coach-07", 0) == ()
    assert compiled.offset("tanker-01", 100) == 0
    assert compiled.offset("tanker-01", 250) == 2500
    assert compiled.offset("tanker-01", 170) == pytest.approx(1250)
    times = [float(t) for t in range(0, 481, 2)]
    a = drive(compiled, reg, times, 30.0)
    assert a == drive(compiled, reg, times, 30.0)  # same seed, same positions
    other = compile_scenario(spec.model_copy(update={"seed": 99}), reg)
    b = drive(other, reg, times, 30.0)
    assert [r["lat"] for r in a["tanker-01"]] != [r["lat"] for r in b["tanker-01"]]  # noise
    route = spec.routes["tanker-01"]
    ((off_from, off_to),) = compiled.off_route("tanker-01", 1500)
    for t, rec in zip(times, a["tanker-01"], strict=True):
        d = metres_off(route, float(str(rec["lat"])), float(str(rec["lon"])))
        assert d == pytest.approx(abs(compiled.offset("tanker-01", t)), abs=6.0), t
        if abs(t - off_from) > 1 and abs(t - off_to) > 1:
            assert (d > 1500) == (off_from < t < off_to), t
    # the speed along the route is untouched: the detour is lateral
    assert {r["speed_kmh"] for r in a["tanker-01"]} <= {54.0 + k / 10 for k in range(21)}


def test_detour_rules():
    reg = registry()

    def spec(*events: dict[str, object]) -> ScenarioSpec:
        return ScenarioSpec.model_validate({"name": "x", "duration_s": 60, "events": events})

    with pytest.raises(ValueError, match="applies to a vehicle"):
        spec({"at_s": 1, "device": "d", "point": "p", "detour_m": 10, "for_s": 5})
    with pytest.raises(ValueError, match="lasts 'for_s'"):
        spec({"at_s": 1, "vehicle": "tanker-01", "detour_m": 10})
    with pytest.raises(ValueError, match="half"):
        spec({"at_s": 1, "vehicle": "tanker-01", "detour_m": 10, "for_s": 5, "over_s": 3})
    with pytest.raises(ValueError, match="exactly one"):
        spec({"at_s": 1, "vehicle": "tanker-01", "detour_m": 10, "to": 5, "for_s": 5})
    overlapping = spec(
        {"at_s": 1, "vehicle": "tanker-01", "detour_m": 10, "for_s": 10},
        {"at_s": 5, "vehicle": "tanker-01", "detour_m": -10, "for_s": 10},
    )
    with pytest.raises(ValueError, match="overlap"):
        compile_scenario(overlapping, reg)
    # a step detour (no ramp) to the left of travel
    compiled = compile_scenario(
        spec({"at_s": 10, "vehicle": "tanker-01", "detour_m": -500, "for_s": 20}), reg
    )
    assert compiled.off_route("tanker-01", 100) == ((10.0, 30.0),)
    east = SimulatedVehicle("t", "v", ((32.0, 118.8), (32.0, 119.8)), Constant(0.0), noise_m=0)
    east.offset_m = compiled.vehicle_offsets["tanker-01"]
    north_m = (float(str(east.record(20, 0)["lat"])) - 32.0) * 111_320
    assert north_m == pytest.approx(500, abs=0.5)  # left of an eastbound vehicle is north


# ---- through a real hub --------------------------------------------------------------------


async def play_through_hub(
    name: str, accel: float, period_s: float, mosquitto, tmp_path
) -> tuple[CompiledScenario, int, list[dict[str, object]]]:
    """Play a fleet scenario against a hub on the fleet-hub config; return the compiled
    scenario, the epoch ms of its t=0 and the hub's fleet alarms (GET /api/v1/alarms)."""
    reg = registry()
    compiled = compile_scenario(scenario(name), reg)
    key = "hh_" + secrets.token_urlsafe(16)
    api_port = free_port()
    hub = Hub(
        reg,
        HubSettings(data_dir=tmp_path / "hub", broker_port=mosquitto.port, api_port=api_port),
        extra_keys=[ApiKeySpec(name="op", sha256=hash_key(key), role="operator")],
    )
    async with running_hub(hub):
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        def clock() -> float:
            return (loop.time() - t0) * accel

        fleet = vehicles(compiled, reg)
        publisher = FleetPublisher(
            list(fleet.values()),
            host="127.0.0.1",
            port=mosquitto.port,
            layout=TopicLayout(),
            clock=clock,
            start_wall_ms=0,  # unused: the scenario has a start, vehicles stamp its clock
            period_s=period_s,
            accel=accel,
        )
        runner = ScenarioRunner(compiled, {}, clock, accel, fleet)
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(publisher.run(stop), name="fleet"),
            asyncio.create_task(runner.run(stop), name="modes"),
        ]
        await asyncio.sleep(compiled.spec.duration_s / accel)
        stop.set()
        await asyncio.gather(*tasks)
        assert publisher.sent > 0

        async def all_judged() -> bool:  # the alarms as the last fix left them
            return hub.metrics.get("hazardhub_positions_total") >= publisher.sent

        await eventually(all_judged, 10, "every fix sent judged")
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"}
        ) as client:

            async def fleet_alarms() -> list[dict[str, object]]:
                alarms = await get_json(client, "/api/v1/alarms", limit=1000)
                return [a for a in alarms if a["rule"] == "fleet"]

            alarms = await eventually(fleet_alarms, 5, "fleet alarms")
    return compiled, runner.epoch_ms, alarms


@pytest.mark.slow
async def test_coach_at_0300_raises_the_night_ban_at_its_first_moving_fix(mosquitto, tmp_path):
    accel, period_s = 100.0, 0.01  # 300 s in 3 s, a fix every 1 s of scenario time
    compiled, epoch, alarms = await play_through_hub(
        "coach-at-0300", accel, period_s, mosquitto, tmp_path
    )
    bans = [a for a in alarms if a["side"] == "night_ban"]
    assert [a["sensor"] for a in bans] == ["coach-07.speed"], alarms
    assert not [a for a in alarms if a["sensor"] != "coach-07.speed"]  # the parked ones: none
    t_move = compiled.first_crossing("coach-07.speed", 5.0 + 1e-9)
    assert t_move is not None
    got = (int(str(bans[0]["started_ts"])) - epoch) / 1000
    # the first fix past the truth, a fix every period (in scenario time) plus scheduling
    assert t_move <= got <= t_move + period_s * accel + 1.0, (got, t_move)
    local = dt.datetime.fromtimestamp(int(str(bans[0]["started_ts"])) / 1000, CST)
    assert (local.hour, local.minute) == (3, 0)


@pytest.mark.slow
async def test_tanker_leaving_its_corridor_raises_and_clears_off_route(mosquitto, tmp_path):
    accel, period_s = 150.0, 0.02  # 480 s in 3.2 s, a fix every 3 s of scenario time
    compiled, epoch, alarms = await play_through_hub(
        "tanker-leaves-corridor", accel, period_s, mosquitto, tmp_path
    )
    kinds = sorted((str(a["sensor"]), str(a["side"])) for a in alarms)
    assert kinds == [("tanker-01.speed", "corridor")], alarms
    (alarm,) = alarms
    ((off_from, off_to),) = compiled.off_route("tanker-01", 1500)
    tolerance = period_s * accel + 1.0  # one fix (scenario time) and GPS noise
    got_from = (int(str(alarm["started_ts"])) - epoch) / 1000
    assert off_from <= got_from + 0.5 <= off_from + tolerance, (got_from, off_from)
    assert alarm["state"] == "cleared"
    got_to = (int(str(alarm["ended_ts"])) - epoch) / 1000
    assert off_to <= got_to + 0.5 <= off_to + tolerance, (got_to, off_to)


@pytest.mark.slow
async def test_hazmat_tanker_keeping_to_its_town_limit_raises_no_overspeed(mosquitto, tmp_path):
    accel, period_s = 50.0, 0.02  # 240 s in 4.8 s, a fix every 1 s of scenario time
    compiled, epoch, alarms = await play_through_hub(
        "hazmat-town-limits", accel, period_s, mosquitto, tmp_path
    )
    # out through the 40 km/h town at 40 km/h: nothing; back at 75 km/h (limits ignored): one
    kinds = sorted((str(a["sensor"]), str(a["side"])) for a in alarms)
    assert kinds == [("tanker-01.speed", "overspeed")], alarms
    (alarm,) = alarms
    route = compiled.spec.route("tanker-01")
    assert route is not None
    drive = compiled.drive("tanker-01")
    in_town = [t / 10 for t in range(2400) if route.locate(drive.distance_at(t / 10))[0] == 1]
    entered = min(t for t in in_town if t >= 150)
    left = max(in_town)
    # the hub's zone starts 50 m before the town (2.4 s at 75 km/h); raised 10 s into the run
    tolerance = period_s * accel + 1.0
    got_from = (int(str(alarm["started_ts"])) - epoch) / 1000
    assert entered + 10 - 2.4 - tolerance <= got_from <= entered + 10 + tolerance, (
        got_from,
        entered,
    )
    assert alarm["state"] == "cleared"
    got_to = (int(str(alarm["ended_ts"])) - epoch) / 1000
    assert left <= got_to <= left + 2.4 + tolerance, (got_to, left)
