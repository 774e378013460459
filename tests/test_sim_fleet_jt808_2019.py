"""Simulated JT/T 808 terminals speak 2013 or 2019, side by side (DOMAIN.md 3.6): a scenario's
`jt808` chooses for the run (`protocol`) or for one vehicle (`vehicles`), and a terminal whose
number has more than 12 digits (a 13-digit IoT SIM) speaks 2019, the only header that carries
it. They always spoke 2013, and such a number stopped the fleet. Through the real gateway and a
real Mosquitto, whose sessions say the header version each terminal used."""

from __future__ import annotations

from pathlib import Path

import pytest
from jt808_helpers import DOC_CONFIG, VEHICLE_TOPIC, gateway_running, port_of, positions_on
from test_sim_fleet_jt808 import play_fleet, simulate_fleet

from gateway.jt808.directory import VehicleRef
from hazardhub.settings import load_registry
from simulators.timeline import ScenarioSpec, compile_scenario
from telemetry.errors import ConfigError
from telemetry.registry import parse_document

from services import MosquittoService

# the documented two tankers, and a coach whose terminal has a 13-digit number
CONFIG = DOC_CONFIG + (
    '      - {id: coach-07, plate: 苏B·K5678, class: coach, terminal: "1440012345678"}\n'
)
ROUTES = """
name: versions
duration_s: 3600
routes:
  tanker-01: [[31.00, 120.00], [31.01, 120.01]]
  tanker-02: [[33.00, 118.00], [33.01, 118.01]]
  coach-07: [[35.00, 116.00], [35.01, 116.01]]
"""
VEHICLES = ("tanker-01", "tanker-02", "coach-07")


@pytest.mark.parametrize(
    ("choice", "v2019"),
    [
        ("jt808: {vehicles: {tanker-02: 2019}}", {"tanker-01": False, "tanker-02": True}),
        ("jt808: {protocol: 2019}", {"tanker-01": True, "tanker-02": True}),
        ("", {"tanker-01": False, "tanker-02": False}),
    ],
    ids=["one-vehicle", "the-run", "default"],
)
async def test_terminals_speak_the_version_chosen_side_by_side(
    choice: str, v2019: dict[str, bool], mosquitto: MosquittoService, tmp_path: Path
) -> None:
    config, scenario = tmp_path / "hub.yaml", tmp_path / "versions.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    scenario.write_text(ROUTES + choice + "\n", encoding="utf-8")
    seen: dict[str, int | None] = {}
    async with (
        positions_on(mosquitto.port) as got,
        gateway_running(load_registry(config), mosquitto.port, tmp_path / "spool") as gw,
    ):

        def count(vehicle: str) -> int:
            return len(got.get(VEHICLE_TOPIC.format(vehicle), []))

        def done() -> bool:
            for vehicle in VEHICLES:  # the header of each terminal's last frame
                conn = gw.server.by_vehicle.get(VehicleRef("chem-logistics", vehicle))
                if conn is not None and conn.session.header is not None:
                    seen[vehicle] = conn.session.header.version
            return len(seen) == 3 and all(count(v) >= 5 for v in VEHICLES)

        # the 5 positions in a quarter of a second, not one
        err = await simulate_fleet(config, scenario, port_of(gw), "0.05", done)
    assert all(count(v) >= 5 for v in VEHICLES), ({v: count(v) for v in VEHICLES}, err[-2000:])
    # a 2019 header has the version byte 1; the 13-digit number speaks 2019 whatever is chosen
    expected = {v: 1 if new else None for v, new in {**v2019, "coach-07": True}.items()}
    assert seen == expected, err[-2000:]
    assert gw.server.counters["binding_refused"] == 0


async def test_a_terminal_that_changes_version_keeps_its_binding(
    mosquitto: MosquittoService, tmp_path: Path
) -> None:
    """The terminal id is the same in a 2013 registration (BYTE[7]) and a 2019 one (BYTE[30],
    padded): the gateway's binding holds when a run speaks the other version."""
    config, scenario = tmp_path / "hub.yaml", tmp_path / "versions.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    async with (
        positions_on(mosquitto.port) as got,
        gateway_running(load_registry(config), mosquitto.port, tmp_path / "spool") as gw,
    ):
        for choice in ("jt808: {protocol: 2013}", "jt808: {protocol: 2019}"):
            scenario.write_text(ROUTES + choice + "\n", encoding="utf-8")
            err = await play_fleet(config, scenario, port_of(gw), list(VEHICLES), got)
            assert all(len(got.get(VEHICLE_TOPIC.format(v), [])) >= 10 for v in VEHICLES), err
        assert gw.server.counters["binding_refused"] == 0
        assert len(gw.server.bindings.all()) == 3


def _spec(text: str) -> ScenarioSpec:
    return parse_document(text, ScenarioSpec, "versions.yaml")


def test_the_versions_are_checked_against_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    reg = load_registry(config)
    compiled = compile_scenario(_spec(ROUTES + "jt808: {vehicles: {tanker-02: 2019}}"), reg)
    assert compiled.jt808_versions == {"tanker-01": 2013, "tanker-02": 2019, "coach-07": 2019}
    with pytest.raises(ValueError, match=r"jt808.vehicles: no vehicle 'tanker-09'"):
        compile_scenario(_spec(ROUTES + "jt808: {vehicles: {tanker-09: 2019}}"), reg)
    with pytest.raises(ValueError, match=r"coach-07: its terminal number 1440012345678 has 13"):
        compile_scenario(_spec(ROUTES + "jt808: {vehicles: {coach-07: 2013}}"), reg)
    with pytest.raises(ConfigError, match="2013 or 2019"):  # no version JT/T 808 has
        _spec(ROUTES + "jt808: {protocol: 2011}")
