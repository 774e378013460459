"""A vehicle whose scenario gives it no speed drives comfortably under every limit of its class:
the default was 60 +- 2 km/h for every class, exactly a hazmat truck's limit off expressways, so
a plain `hazardhub simulate fleet` raised overspeed after overspeed. The fleet's positions are
judged here by the hub's own fleet core, by day and into the night (the passenger limit is 80 %
of the day's then)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from alerts.vehicles import EventKind, FleetState, compile_fleet, evaluate_fleet
from hazardhub.settings import load_registry
from simulators.fleet import SimulatedVehicle, attach_scenario
from simulators.route import default_route
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.registry import Registry

CONFIG = """
version: 1
tenants:
  - id: chem-logistics
    vehicles:
      - {id: tanker-01, plate: 苏A·D1234, class: hazmat}
      - {id: tanker-02, plate: 苏A·D5678, class: hazmat}
      - {id: tanker-03, plate: 苏A·D9012, class: hazmat}
      - {id: coach-07, plate: 苏B·K5678, class: coach}
      - {id: charter-03, plate: 苏E·C3333, class: charter}
"""
STEADY = ScenarioSpec(name="steady", duration_s=10 * 365 * 86400.0)  # `simulate fleet`'s
CST = dt.timezone(dt.timedelta(hours=8))


def _registry(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "hub.yaml"
    path.write_text(text, encoding="utf-8")
    return load_registry(path)


def test_the_default_speed_is_under_the_lowest_limit_of_each_class(tmp_path: Path) -> None:
    compiled = compile_scenario(STEADY, _registry(tmp_path, CONFIG))
    speeds = {v: compiled.vehicle_speeds[v] for v in ("tanker-01", "coach-07", "charter-03")}
    # 80 % of hazmat's 60 km/h off expressways, of the passengers' 100 x 0.8 at night
    around = {"tanker-01": 48, "coach-07": 64, "charter-03": 64}
    for vehicle, signal in speeds.items():
        seen = [signal.value_at(float(t)) for t in range(0, 7200, 7)]
        assert around[vehicle] - 2 <= min(seen) and max(seen) <= around[vehicle] + 2, vehicle
    # the configuration's limits, not the standard's: a fleet kept to 40 km/h drives 32
    lower = CONFIG + "fleet:\n  hazmat: {speed_kmh: 40}\n"
    compiled = compile_scenario(STEADY, _registry(tmp_path, lower))
    assert max(compiled.vehicle_speeds["tanker-01"].value_at(float(t)) for t in range(600)) <= 34
    # and a lower per-reading rule: its level is a limit too
    lower_rule = "class: coach, rule: road-transport.hazmat-speed-other-roads}"  # 60 km/h
    rule = CONFIG.replace("class: coach}", lower_rule)
    compiled = compile_scenario(STEADY, _registry(tmp_path, rule))
    assert max(compiled.vehicle_speeds["coach-07"].value_at(float(t)) for t in range(600)) <= 50


@pytest.mark.parametrize("hour", [12, 21])  # by day; from 21:00 into the night
def test_a_plain_fleet_run_raises_no_overspeed(tmp_path: Path, hour: int) -> None:
    reg = _registry(tmp_path, CONFIG)
    compiled = compile_scenario(STEADY, reg)
    infos = list(reg.vehicles.values())
    fleet = [
        SimulatedVehicle(
            v.tenant,
            v.spec.id,
            default_route(k, len(infos)),
            compiled.vehicle_speeds[v.spec.id],
        )
        for k, v in enumerate(infos)
    ]
    attach_scenario(compiled, fleet, 0)
    start = round(dt.datetime(2026, 3, 3, hour, tzinfo=CST).timestamp() * 1000)
    rows = [
        (info.speed_sensor, rec["ts"], rec["lat"], rec["lon"], rec["speed_kmh"])
        for info, vehicle in zip(infos, fleet, strict=True)
        for rec in (vehicle.record(float(t), start) for t in range(0, 2 * 3600, 2))
    ]
    rows.sort(key=lambda r: (r[1], r[0]))
    cols = list(zip(*rows, strict=True))
    batch = SimpleNamespace(
        vehicle=np.array(cols[0], dtype=np.int32),
        ts=np.array(cols[1], dtype=np.int64),
        lat=np.array(cols[2], dtype=np.float64),
        lon=np.array(cols[3], dtype=np.float64),
        speed_kmh=np.array(cols[4], dtype=np.float64),
    )
    table = compile_fleet(reg.config.fleet, infos)
    _, events = evaluate_fleet(table, FleetState.new(len(table)), batch, start + 2 * 3600_000)
    kinds = [EventKind(int(k)).name for k in events.kind]
    assert "OVERSPEED" not in kinds, kinds
    # nor the per-reading rule of each vehicle's speed sensor
    for info in infos:
        levels = [lv.above for lv in reg.sensors[info.speed_sensor].levels if lv.above]
        mine = batch.speed_kmh[batch.vehicle == info.speed_sensor]
        assert len(mine) == 3600 and levels and mine.max() < min(levels), info.spec.id
