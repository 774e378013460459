"""A scenario over a city centre's configuration of several enterprises (tenants): device ids are
unique within a site only, so two chemical enterprises may both have a `tank1-rtu`. A scenario
names a device as `device` (when that is unique), `tenant/device` or `tenant/site/device`; a
bare or `tenant/device` name that fits several is refused with the candidates, never applied to
them all (an overfill of one enterprise's tank filled both, the truth listed one enterprise's
sensors, and `hx-chem/tank1-rtu` was "no device")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hazardhub.settings import load_profiles
from hazardhub.simulate import write_record
from simulators.farm import ScenarioRunner, build_farm
from simulators.timeline import CompiledScenario, ScenarioSpec, compile_scenario
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry

ROOT = Path(__file__).resolve().parent.parent
SHIPPED, PACKS = load_profiles(ROOT / "profiles")


def tank(dev: str, prefix: str, port: int) -> dict[str, Any]:
    return {
        "id": dev,
        "profile": "tank-rtu",
        "modbus": {"port": port, "unit": 1},
        "sensors": [
            {
                "id": f"{prefix}-level",
                "point": "level",
                "kind": "level",
                "rule": "chem-process.tank-level-10m",
            },
            {"id": f"{prefix}-pressure", "point": "pressure", "kind": "pressure"},
        ],
    }


def panel(prefix: str, port: int) -> dict[str, Any]:
    return {
        "id": "gas-panel",
        "profile": "lel-panel-4",
        "modbus": {"port": port, "unit": 1},
        "sensors": [
            {
                "id": f"{prefix}-lel1",
                "point": "lel1",
                "kind": "flammable_gas",
                "rule": "chem-gas.flammable-lel",
            }
        ],
    }


def city() -> Registry:
    """Two enterprises with a `tank1-rtu` each; the second has a `gas-panel` at two sites."""
    config = HubConfig.model_validate(
        {
            "tenants": [
                {
                    "id": "acme-chem",
                    "sites": [
                        {"id": "tank-farm", "devices": [tank("tank1-rtu", "acme-t101", 25001)]}
                    ],
                },
                {
                    "id": "hx-chem",
                    "sites": [
                        {
                            "id": "north",
                            "devices": [
                                tank("tank1-rtu", "hx-t101", 25002),
                                tank("tank9-rtu", "hx-t109", 25003),
                                panel("hx-n", 25004),
                            ],
                        },
                        {"id": "south", "devices": [panel("hx-s", 25005)]},
                    ],
                    "vehicles": [{"id": "hx-tanker", "plate": "苏E·00001", "class": "hazmat"}],
                },
            ]
        }
    )
    return build_registry(config, SHIPPED, PACKS)


def compiled(events: list[dict[str, Any]], **more: Any) -> CompiledScenario:
    spec = ScenarioSpec.model_validate(
        {"name": "city", "duration_s": 100, "events": events, **more}
    )
    return compile_scenario(spec, city())


OVERFILL = {"at_s": 10, "point": "level", "to": 9.5, "over_s": 40}


def test_a_bare_id_of_two_tenants_is_refused_with_the_candidates():
    with pytest.raises(ValueError, match=r"events\.0") as said:
        compiled([{**OVERFILL, "device": "tank1-rtu"}])
    text = str(said.value)
    assert "'tank1-rtu'" in text
    assert "acme-chem/tank-farm/tank1-rtu" in text and "hx-chem/north/tank1-rtu" in text
    assert "tenant/device" in text  # how to name one


@pytest.mark.parametrize("ref", ["hx-chem/tank1-rtu", "hx-chem/north/tank1-rtu"])
def test_a_qualified_name_drives_that_enterprise_s_tank_only(ref):
    c = compiled([{**OVERFILL, "device": ref}])
    assert c.value("hx-t101-level", 50) == 9.5
    assert c.value("acme-t101-level", 50) == c.value("acme-t101-level", 0) < 8.5
    # the truth covers every measured sensor of every enterprise, the vehicle's speed too
    reg = city()
    assert set(c.truth(10.0)) == {s.id for s in reg.sensors}


def test_a_bare_id_unique_in_the_configuration_still_works():
    c = compiled([{**OVERFILL, "device": "tank9-rtu"}])
    assert c.value("hx-t109-level", 50) == 9.5
    assert c.value("hx-t101-level", 50) < 8.5


def test_a_tenant_device_name_of_two_sites_is_refused_with_the_candidates():
    lel = {"at_s": 5, "point": "lel1", "to": 40}
    with pytest.raises(ValueError, match=r"events\.0") as said:
        compiled([{**lel, "device": "hx-chem/gas-panel"}])
    assert "hx-chem/north/gas-panel" in str(said.value)
    assert "hx-chem/south/gas-panel" in str(said.value)
    c = compiled([{**lel, "device": "hx-chem/south/gas-panel"}])
    assert (c.value("hx-s-lel1", 50), c.value("hx-n-lel1", 50)) == (40, 7.5)


@pytest.mark.parametrize(
    ("ref", "said"),
    [
        ("tank2-rtu", "no device 'tank2-rtu'"),
        ("acme-chem/tank9-rtu", "no device 'acme-chem/tank9-rtu'"),
        ("hx-chem/east/tank1-rtu", "no device 'hx-chem/east/tank1-rtu'"),
        ("a/b/c/d", "names a device as"),
    ],
)
def test_a_name_of_no_device_is_refused(ref, said):
    with pytest.raises(ValueError, match=said):
        compiled([{**OVERFILL, "device": ref}])


def test_baselines_take_the_same_names():
    level = {"level": {"constant": 3.0}}
    c = compiled([], baseline={"hx-chem/tank1-rtu": level, "tank9-rtu": level})
    assert (c.value("hx-t101-level", 1), c.value("hx-t109-level", 1)) == (3.0, 3.0)
    assert c.value("acme-t101-level", 1) != 3.0
    with pytest.raises(ValueError, match=r"baseline: .*acme-chem/tank-farm/tank1-rtu"):
        compiled([], baseline={"tank1-rtu": level})
    with pytest.raises(ValueError, match="baseline: no device or vehicle 'tank7-rtu'"):
        compiled([], baseline={"tank7-rtu": level})
    with pytest.raises(ValueError, match="which another entry names too"):
        compiled([], baseline={"tank9-rtu": level, "hx-chem/north/tank9-rtu": level})
    with pytest.raises(ValueError, match="'hx-chem/tank1-rtu' has no point 'lel1'"):
        compiled([], baseline={"hx-chem/tank1-rtu": {"lel1": {"constant": 1}}})
    c = compiled([], baseline={"hx-tanker": {"speed": {"constant": 42}}})
    assert c.value("hx-tanker.speed", 1) == 42


def test_a_baseline_name_of_a_vehicle_and_a_device_is_refused():
    doc = city().config.model_dump(by_alias=True)
    doc["tenants"][1]["vehicles"][0]["id"] = "tank9-rtu"
    reg = build_registry(HubConfig.model_validate(doc), SHIPPED, PACKS)
    spec = ScenarioSpec.model_validate(
        {"name": "x", "duration_s": 9, "baseline": {"tank9-rtu": {"speed": {"constant": 1}}}}
    )
    with pytest.raises(ValueError, match="the vehicle and hx-chem/north/tank9-rtu"):
        compile_scenario(spec, reg)


def test_modes_and_the_farm_act_on_the_device_named():
    c = compiled(
        [
            {"at_s": 5, "device": "hx-chem/tank1-rtu", "mode": "comm_loss", "for_s": 10},
            {"at_s": 6, "device": "acme-chem/tank1-rtu", "point": "level", "mode": "stuck"},
        ]
    )
    assert [(m.device, m.mode) for m in c.modes] == [
        ("hx-chem/north/tank1-rtu", "comm_loss"),
        ("acme-chem/tank-farm/tank1-rtu", "stuck"),
        ("hx-chem/north/tank1-rtu", None),
    ]
    reg = city()
    now = [0.0]
    farm = build_farm(reg, c, lambda: now[0], any_port=True)
    assert len(farm.devices) == len(reg.devices) == 5
    acme = farm.devices["acme-chem/tank-farm/tank1-rtu"]
    hx = farm.devices["hx-chem/north/tank1-rtu"]
    runner = ScenarioRunner(c, farm.devices, lambda: now[0])
    runner.apply(c.modes[0])
    assert (acme.online, hx.online) == (True, False)
    # each unit serves its own tenant's signals
    c2 = compiled([{**OVERFILL, "device": "hx-chem/tank1-rtu"}])
    farm2 = build_farm(reg, c2, lambda: 50.0, any_port=True)
    assert farm2.devices["hx-chem/north/tank1-rtu"].values_at(50)["level"] == pytest.approx(9.5)
    assert farm2.devices["acme-chem/tank-farm/tank1-rtu"].values_at(50)["level"] < 8.5


def test_the_record_lists_every_enterprise_s_sensors(tmp_path):
    c = compiled([{**OVERFILL, "device": "hx-chem/tank1-rtu"}])
    path = tmp_path / "truth.json"
    write_record(path, c, 0, 1.0)
    doc = json.loads(path.read_text())
    assert {"acme-t101-level", "hx-t101-level", "hx-t109-level"} <= set(doc["truth"])
    assert set(doc["truth"]) == {s.id for s in city().sensors}
    assert dict(map(tuple, doc["truth"]["hx-t101-level"]))[50.0] == 9.5
