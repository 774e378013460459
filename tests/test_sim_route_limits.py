"""Routes with speed limits by segment: a vehicle drives its speed signal up to the limit of the
segment it is on (distance is the integral of the speed it drives), unless a scenario event makes
it speed on purpose; the ground truth is the speed driven."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazardhub.settings import load
from hazardhub.simulate import write_record
from simulators.fleet import SimulatedVehicle
from simulators.route import Drive, Route, segment_m
from simulators.scenario import DEMO_ROUTES, demo_vehicle_speeds
from simulators.signals import Constant, Piecewise
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.errors import ConfigError
from telemetry.registry import parse_document

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.yaml"
SCENARIOS = ROOT / "examples" / "scenarios"
# an open route due east: 3 km, 2 km, 3 km (approximately; lengths are measured)
EAST = ((32.0, 118.8), (32.0, 118.8318), (32.0, 118.853), (32.0, 118.8848))


def spec_file(path: Path) -> ScenarioSpec:
    return parse_document(path.read_text(), ScenarioSpec, str(path))


def test_a_40_kmh_segment_is_driven_at_40_and_the_distance_is_the_integral():
    route = Route(EAST, (None, 40.0, 80.0))
    lengths = [segment_m(a, b) for a, b in itertools.pairwise(EAST)]
    vehicle = SimulatedVehicle("t", "v", route, Constant(72.0), noise_m=0)
    t_in = lengths[0] / 20.0  # 72 km/h = 20 m/s, no limit on the first segment
    t_out = t_in + lengths[1] / (40 / 3.6)
    t_end = t_out + lengths[2] / 20.0  # then back (tested below)
    seen_in_town = 0
    for t in range(math.floor(t_end)):
        rec = vehicle.record(float(t), 0)
        seg = route.locate(vehicle.distance_m)[0]
        want = 40.0 if seg == 1 else 72.0
        assert rec["speed_kmh"] == want, (t, seg, rec)
        seen_in_town += seg == 1
        # the distance driven, segment by segment
        if t <= t_in:
            expect = 20.0 * t
        elif t <= t_out:
            expect = lengths[0] + (t - t_in) * 40 / 3.6
        else:
            expect = lengths[0] + lengths[1] + (t - t_out) * 20.0
        assert vehicle.distance_m == pytest.approx(expect, abs=1e-6), t
    assert seen_in_town == pytest.approx(t_out - t_in, abs=1)
    # the town is entered at its first point: limits and positions agree
    at_entry = SimulatedVehicle("t", "v", route, Constant(72.0), noise_m=0).record(t_in, 0)
    assert (at_entry["lat"], at_entry["lon"]) == pytest.approx(EAST[1], abs=1e-6)


def test_an_open_route_is_limited_on_the_way_back_too():
    route = Route(EAST[:3], (None, 40.0))
    drive = Drive(Constant(72.0), route)
    total = sum(segment_m(a, b) for a, b in itertools.pairwise(EAST[:3]))
    t_end = next(t / 10 for t in range(100_000) if drive.distance_at(t / 10) >= total)  # turns
    assert drive.value_at(t_end + 5) == 40.0  # back through the 40 km/h segment first
    back_out = t_end + segment_m(EAST[1], EAST[2]) / (40 / 3.6)
    assert drive.value_at(back_out + 5) == 72.0


@settings(max_examples=40, deadline=None)
@given(
    legs_m=st.lists(st.floats(50, 3000), min_size=1, max_size=5),
    raw_limits=st.lists(st.one_of(st.none(), st.floats(5, 130)), min_size=5, max_size=5),
    speeds=st.lists(st.floats(-5, 140), min_size=1, max_size=6),
    closed=st.booleans(),
    samples=st.lists(st.floats(0, 400), min_size=1, max_size=30),
)
def test_speed_never_above_the_segment_limit_and_distance_consistent(
    legs_m, raw_limits, speeds, closed, samples
):
    lat = 32.0
    lon = [118.8]
    for leg in legs_m:
        lon.append(lon[-1] + leg / (111_195.0 * math.cos(math.radians(lat))))
    points = [(lat, x) for x in lon]
    if closed:  # round and back along a parallel line
        points += [(lat + 0.01, x) for x in reversed(lon)] + [points[0]]
    n_seg = len(points) - 1
    limits = tuple(raw_limits[i % len(raw_limits)] for i in range(n_seg))
    route = Route(tuple(points), limits)
    signal = Piecewise(tuple((40.0 * i, v) for i, v in enumerate(speeds)))
    vehicle = SimulatedVehicle("t", "v", route, signal, noise_m=0)
    for t in sorted(samples):
        rec = vehicle.record(t, 0)
        lim = route.limit_at(vehicle.distance_m)
        speed = float(str(rec["speed_kmh"]))
        if lim is not None:
            assert speed <= lim, (t, speed, lim)
        assert speed <= max(0.0, round(signal.value_at(t), 1))
    # distance is the integral of the speed driven: on the drive's grid the speed is held over
    # a step, so a left sum of the speed at each step agrees but where a step crosses into a
    # segment of another limit (at most one step's worth of the speed difference each)
    drive = vehicle.drive
    horizon = 400.0
    steps = round(horizon / drive.step_s)
    fresh = Drive(signal, route)
    assert fresh.distance_at(horizon) == drive.distance_at(horizon)  # order of asking: no matter
    total = 0.0
    slack = 0.0
    prev_seg = route.locate(0.0)[0]
    for k in range(steps):
        t = k * drive.step_s
        v = drive.value_at(t)
        total += v / 3.6 * drive.step_s
        seg = route.locate(drive.distance_at(t + drive.step_s))[0]
        if seg != prev_seg:
            slack += 140 / 3.6 * drive.step_s
        prev_seg = seg
    assert drive.distance_at(horizon) == pytest.approx(total, abs=slack + 1e-6)
    distances = [drive.distance_at(t) for t in sorted(samples)]
    assert distances == sorted(distances)


def test_limits_validation_says_what_is_wrong():
    base = {"name": "x", "duration_s": 60, "routes": {"tanker-01": EAST}}

    def spec(**extra: object) -> ScenarioSpec:
        return ScenarioSpec.model_validate(base | extra)

    assert spec(speed_limits={"tanker-01": [None, 40, 80]}).route("tanker-01") == Route(
        EAST, (None, 40.0, 80.0)
    )
    with pytest.raises(ValueError, match=r"speed_limits.tanker-01: 2 speed limits for 3 segments"):
        spec(speed_limits={"tanker-01": [60, 40]})
    with pytest.raises(ValueError, match=r"segment 1: speed limit -40.0 km/h must be a number"):
        spec(speed_limits={"tanker-01": [60, -40, 80]})
    with pytest.raises(ValueError, match=r"segment 2: speed limit nan"):
        spec(speed_limits={"tanker-01": [60, 40, math.nan]})
    with pytest.raises(ValueError, match=r"segment 0: speed limit 0.0"):
        spec(speed_limits={"tanker-01": [0, 40, 80]})
    with pytest.raises(ValueError, match=r"speed_limits.coach-07: the vehicle has no route"):
        spec(speed_limits={"coach-07": [60]})
    with pytest.raises(ValueError, match="'ignore_limits' goes on a vehicle's speed event"):
        spec(events=[{"at_s": 1, "vehicle": "tanker-01", "mode": "offline", "ignore_limits": True}])
    with pytest.raises(ValueError, match="'ignore_limits' goes on a vehicle's speed event"):
        spec(events=[{"at_s": 1, "device": "d", "point": "p", "to": 3, "ignore_limits": True}])
    with pytest.raises(ValueError, match="3 speed limits for 1 segments"):
        Route(EAST[:2], (1.0, 2.0, 3.0))
    # a YAML file: the loader's error names the file and the field
    with pytest.raises(ConfigError, match=r"speed_limits.tanker-01: 1 speed limits for 3"):
        parse_document(
            "name: x\nduration_s: 60\nroutes:\n  tanker-01: [[32, 118.8], [32, 118.9], "
            "[32, 119.0], [32, 119.1]]\nspeed_limits:\n  tanker-01: [50]\n",
            ScenarioSpec,
            "bad.yaml",
        )
    # limits for a vehicle the configuration does not have
    stranger = ScenarioSpec.model_validate(
        base | {"routes": {"nobody": EAST}, "speed_limits": {"nobody": [1, 2, 3]}}
    )
    with pytest.raises(ValueError, match="speed_limits: no vehicle 'nobody'"):
        compile_scenario(stranger, load(DEMO).registry())


def test_an_ignore_limits_event_speeds_until_the_next_speed_event():
    compiled = compile_scenario(
        spec_file(SCENARIOS / "hazmat-overspeed.yaml"), load(DEMO).registry()
    )
    drive = compiled.drive("tanker-01")
    assert drive.free == ((30.0, 100.0),)
    value = compiled.value
    assert value("tanker-01.speed", 20) == 72  # under the limit: its signal
    assert value("tanker-01.speed", 60) == 95  # over the 80 km/h of its route, on purpose
    assert value("tanker-01.speed", 103) == 80  # from the next event it keeps to the limit
    assert value("tanker-01.speed", 120) == 70
    assert value("coach-07.speed", 60) == 90  # no limits on its (generated) route


def test_town_scenario_truth_record_and_determinism(tmp_path):
    reg = load(SCENARIOS / "fleet" / "fleet-hub.yaml").registry()
    spec = spec_file(SCENARIOS / "fleet" / "hazmat-town-limits.yaml")
    compiled = compile_scenario(spec, reg)
    route = spec.route("tanker-01")
    assert route is not None and route.limits_kmh == (80, 40, 60)
    drive = compiled.drive("tanker-01")
    town = [t / 10 for t in range(2400) if route.locate(drive.distance_at(t / 10))[0] == 1]
    out = [t for t in town if t < 150]
    back = [t for t in town if t >= 150]
    assert 40 < out[0] < 46 and 120 < out[-1] < 127  # 0.9 km at 40 km/h: 81 s
    assert 168 < back[0] < 176 and 210 < back[-1] < 219  # at 75 km/h: 43 s
    assert {compiled.value("tanker-01.speed", t) for t in out} == {40.0}
    assert min(compiled.value("tanker-01.speed", t) for t in back) > 70
    again = compile_scenario(spec, reg)
    assert again.truth(1.0) == compiled.truth(1.0)
    other = compile_scenario(spec.model_copy(update={"seed": 99}), reg)
    assert other.truth(1.0)["tanker-01.speed"] != compiled.truth(1.0)["tanker-01.speed"]
    record = tmp_path / "truth.json"
    write_record(record, compiled, 0, 20.0)
    doc = json.loads(record.read_text())
    truth = doc["truth"]["tanker-01.speed"]  # [t, v] every 0.12 s

    def at(t: float) -> float:
        return float(min(truth, key=lambda tv: abs(tv[0] - t))[1])

    assert at(80.0) == 40.0 and 70 < at(30.0) < 80 and at(190.0) > 70
    assert doc["speed_limits"]["tanker-01"] == {
        "limits_kmh": [80, 40, 60],
        "speeding": [[150, None]],
    }


def test_demo_tanker_keeps_to_its_town_limit_but_speeds_on_purpose():
    speeds = demo_vehicle_speeds()
    route = DEMO_ROUTES["tanker-01"]
    tanker = SimulatedVehicle("acme-chem", "tanker-01", route, speeds["tanker-01"], noise_m=0)
    recs = {t: tanker.record(float(t), 0) for t in range(1200)}
    assert recs[30]["speed_kmh"] == 90.0  # the demo's overspeed, deliberate
    in_town = []
    for t, rec in recs.items():
        if route.locate(tanker.drive.distance_at(float(t)))[0] == 2:
            in_town.append(t)
            assert rec["speed_kmh"] == 50.0
    assert len(in_town) > 60  # 0.9 km at 50 km/h
    # and the demo's speed zone for that town, with its buffer, holds no fix above its limit: a
    # 400 m buffer raised an overspeed on every loop, 11 minutes in (helper-71)
    demo = load(DEMO).registry().config
    (zone,) = [g for g in demo.fleet.geofences if g.id == "town-50"]
    (a, b) = zone.polyline
    lat0 = math.radians(a[0])

    def metres(p: tuple[float, float]) -> tuple[float, float]:
        return (
            math.radians(p[1] - a[1]) * 6_371_000 * math.cos(lat0),
            math.radians(p[0] - a[0]) * 6_371_000,
        )

    bx, by = metres(b)
    inside, run, longest = [], 0, 0
    for t, rec in recs.items():
        px, py = metres((rec["lat"], rec["lon"]))
        k = max(0.0, min(1.0, (px * bx + py * by) / (bx * bx + by * by)))
        near = math.hypot(px - k * bx, py - k * by) <= zone.buffer_m
        inside += [t] if near else []
        # past the deliberate overspeed of the first minute, a fix over the zone's limit
        run = run + 1 if t > 60 and near and rec["speed_kmh"] > zone.limit_kmh else 0
        longest = max(longest, run)
    assert len(inside) > 60
    # over the limit for less than the overspeed's minimum (a fix a second): never an alarm
    assert longest < demo.fleet.hazmat.overspeed_min_s, longest


def test_the_documented_snippet_compiles_against_the_fleet_hub_config():
    text = (ROOT / "docs" / "simulators.md").read_text()
    section = text.split("### Speed limits by segment", 1)[1]
    snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = parse_document(snippet, ScenarioSpec, "docs/simulators.md")
    compiled = compile_scenario(spec, load(SCENARIOS / "fleet" / "fleet-hub.yaml").registry())
    assert compiled.value("tanker-01.speed", 80.0) == 40.0
    assert compiled.drive("tanker-01").free == ((150.0, math.inf),)
