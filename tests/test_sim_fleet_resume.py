"""`hazardhub simulate fleet` run again: with `--resume FILE` each vehicle drives on from where
the last run left it (a second run started every vehicle at its route's start again, and the hub
raised a GPS-drift alarm per vehicle, told at its raise and at its clear); `--tenant` drives one
tenant's vehicles only (it drove every tenant's). Real Mosquitto, the simulator as a process,
stopped as an operator stops it (SIGTERM)."""

from __future__ import annotations

import json

import pytest
from test_sim_default_routes import DEMO, tracks

from simulators.fleetstate import load_starts, route_digest, save_positions
from simulators.route import segment_m
from simulators.signals import Constant
from simulators.vehicle import SimulatedVehicle
from telemetry.errors import ConfigError

from services import free_port

COACHES = {"coach-07", "charter-03"}  # swift-coach's; acme-chem has tanker-01


def at(fix: dict[str, float]) -> tuple[float, float]:
    return fix["lat"], fix["lon"]


async def test_a_resumed_fleet_drives_on_from_where_it_stopped_and_one_tenant_only(
    tmp_path, mosquitto
):
    state = tmp_path / "fleet-state.json"
    args = ("--period", "0.2", "--tenant", "swift-coach", "--resume", str(state))
    first = await tracks(DEMO, mosquitto.port, 2, 25, *args)
    assert set(first) == COACHES  # the tanker of acme-chem is not driven
    saved = json.loads(state.read_text())["vehicles"]
    assert set(saved) == {f"swift-coach/{v}" for v in COACHES}
    second = await tracks(DEMO, mosquitto.port, 2, 2, *args)
    for v in COACHES:
        start, stop = at(first[v][0]), at(first[v][-1])
        assert segment_m(start, stop) > 60, v  # it drove off its route's start
        # the second run's first fix is where the first run's last was (GPS noise, and a fix or
        # two taken after the last one received), not back at the start
        assert segment_m(at(second[v][0]), stop) < 25, (v, segment_m(at(second[v][0]), stop))


def test_an_unknown_tenant_is_refused_with_those_that_have_vehicles(capsys):
    from hazardhub.cli import main

    args = ["simulate", "fleet", "-c", str(DEMO), "--tenant", "swift-coach", "--tenant", "nope"]
    assert main([*args, "--broker", f"127.0.0.1:{free_port()}", "--duration", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "--tenant nope: no vehicles of that tenant" in err, err
    assert "acme-chem, swift-coach" in err, err


def test_a_vehicle_whose_route_changed_starts_at_its_start(tmp_path):
    state = tmp_path / "s.json"
    route = ((31.0, 120.0), (31.1, 120.1))
    v = SimulatedVehicle("t", "v1", route, Constant(60.0), noise_m=0.0)
    last = v.record(30.0, 0)
    save_positions(state, [v])
    assert load_starts(state, {"t/v1": route}) == {"t/v1": v.distance_m} and v.distance_m > 400
    resumed = SimulatedVehicle("t", "v1", route, Constant(60.0), noise_m=0.0, start_m=v.distance_m)
    first = resumed.record(0.0, 0)
    assert (first["lat"], first["lon"]) == (last["lat"], last["lon"])
    moved = ((31.0, 120.0), (31.2, 120.1))
    assert route_digest(moved) != route_digest(route)
    assert load_starts(state, {"t/v1": moved}) == {}  # a jump either way: from the start
    state.write_text("{not json")
    with pytest.raises(ConfigError, match=r"not a fleet state file.*remove it"):
        load_starts(state, {"t/v1": route})
