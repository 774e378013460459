"""Configuration: the demo registry's content, the shipped profiles and rule packs, and errors that
name the file, the dotted path and the problem."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from hazardhub.settings import (
    default_profiles_dirs,
    load,
    load_profiles,
    load_registry,
    read_text,
)
from telemetry.config import DeviceProfile, HubConfig, RulePack
from telemetry.errors import ConfigError, TelemetryError
from telemetry.registry import DEFAULT_VEHICLE_RULES, build_registry, parse_document

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.yaml"
PROFILES = ROOT / "profiles"
DEVICE_FILES = sorted((PROFILES / "devices").glob("*.yaml"))
RULE_FILES = sorted((PROFILES / "rules").glob("*.yaml"))


def _pack(name: str) -> RulePack:
    path = PROFILES / "rules" / f"{name}.yaml"
    return parse_document(read_text(path), RulePack, str(path))


# --- the demo configuration ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Any:
    return load_registry(DEMO, [PROFILES])


def test_demo_loads_with_relative_paths_from_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    reg = load_registry(Path("examples/demo.yaml"), [Path("profiles")])
    assert reg.tenants == ("acme-chem", "north-coal", "swift-coach")


def test_demo_sensor_indices_are_dense_and_consistent(demo: Any) -> None:
    assert [s.index for s in demo.sensors] == list(range(len(demo.sensors)))
    assert len({s.id for s in demo.sensors}) == len(demo.sensors)
    for s in demo.sensors:
        assert demo.sensor(s.id) is s
        assert demo.sensor_index(s.tenant, s.site, s.device, s.key) == s.index
    assert demo.sensor("no-such-sensor") is None
    assert demo.sensor_index("acme-chem", "tank-farm", "tank1-rtu", "volume") is None
    # 2 tanks x 3 + 4 gas + interlock bypass and trip + 5 mine + 3 vehicles
    assert len(demo.sensors) == 6 + 4 + 2 + 5 + 3


def test_demo_tank_farm(demo: Any) -> None:
    chem = "acme-chem"
    farm = [s for s in demo.sensors if (s.tenant, s.site) == (chem, "tank-farm")]
    for tank, dev in (("t101", "tank1-rtu"), ("t102", "tank2-rtu")):
        info = demo.devices[(chem, "tank-farm", dev)]
        assert info.profile.name == "tank-rtu"
        assert [p.name for p in info.points] == ["level", "pressure", "temperature"]
        assert all(p.dtype == "float32" for p in info.points)
        got = [
            (demo.sensors[i].id, demo.sensors[i].kind, demo.sensors[i].unit) for i in info.sensors
        ]
        assert got == [
            (f"{tank}-level", "level", "m"),
            (f"{tank}-pressure", "pressure", "MPa"),
            (f"{tank}-temp", "temperature", "°C"),
        ]
        assert info.spec.modbus.port == 15021
    assert demo.devices[(chem, "tank-farm", "tank1-rtu")].spec.modbus.unit == 1
    assert demo.devices[(chem, "tank-farm", "tank2-rtu")].spec.modbus.unit == 2
    level = demo.sensor("t101-level")
    process = _pack("chem-process")
    assert level.rule == "chem-process.tank-level-10m"
    assert level.levels == process.rules["tank-level-10m"].levels
    assert [(lv.name, lv.above, lv.below) for lv in level.levels] == [
        ("hi", 8.5, None),
        ("hihi", 9.2, None),
        ("lo", None, 0.8),
    ]
    gas = [s for s in farm if s.kind == "flammable_gas"]
    assert [s.id for s in gas] == ["gd-101a", "gd-101b", "gd-102a", "gd-102b"]
    assert [s.key for s in gas] == ["lel1", "lel2", "lel3", "lel4"]
    assert {s.device for s in gas} == {"gas-panel"}
    assert all(s.rule == "chem-gas.flammable-lel" and s.unit == "%LEL" for s in gas)
    assert [lv.above for lv in gas[0].levels] == [25, 50]
    # the SIS loop's two flags, judged apart; not the older word `state` and its rule
    sis = [s for s in farm if s.device == "sis-1"]
    assert [(s.id, s.kind, s.key, s.rule) for s in sis] == [
        ("sis-inlet-bypass", "interlock", "bypassed", "chem-process.interlock-bypass"),
        ("sis-inlet-trip", "interlock", "tripped", "chem-process.interlock-trip"),
    ]
    assert not [s.id for s in demo.sensors if s.rule == "chem-process.interlock"]
    assert demo.config.tenants[0].sites[0].major_hazard_grade == 2
    assert demo.config.tenants[0].sites[0].kind == "chemical"


def test_demo_mine_face(demo: Any) -> None:
    info = demo.devices[("north-coal", "face-1301", "kj-sub-3")]
    sensors = [demo.sensors[i] for i in info.sensors]
    methane = [s for s in sensors if s.kind == "methane"]
    assert [(s.tag, s.key, s.rule) for s in methane] == [
        ("T0", "ch4_t0", "coal-methane.upper-corner-t0"),
        ("T1", "ch4_t1", "coal-methane.face-t1"),
        ("T2", "ch4_t2", "coal-methane.return-t2"),
    ]
    assert all(s.unit == "%CH4" for s in methane)
    # T2 (return airway) cuts power at the alarm concentration itself
    t2 = {lv.name: lv for lv in methane[2].levels}
    assert t2["alarm"].above == t2["power_cut"].above == 1.0
    co = demo.sensor("face1301-co")
    assert (co.kind, co.unit, co.rule) == ("co", "ppm", "coal-gas.co")
    feed = demo.sensor("face1301-feed")
    assert (feed.kind, feed.rule, feed.levels) == ("power_feed", "", ())
    feed_point = next(p for p in info.points if p.name == "feed")
    assert (feed_point.table, feed_point.dtype) == ("discrete", "bool")
    assert demo.config.tenants[1].sites[0].kind == "mine"


def test_demo_vehicles(demo: Any) -> None:
    assert set(demo.vehicles) == {
        ("acme-chem", "tanker-01"),
        ("swift-coach", "coach-07"),
        ("swift-coach", "charter-03"),
    }
    road = _pack("road-transport")
    for (tenant, vid), cls in (
        (("acme-chem", "tanker-01"), "hazmat"),
        (("swift-coach", "coach-07"), "coach"),
        (("swift-coach", "charter-03"), "charter"),
    ):
        veh = demo.vehicles[(tenant, vid)]
        assert veh.spec.vehicle_class == cls
        speed = demo.sensors[veh.speed_sensor]
        assert speed.id == f"{vid}.speed"
        assert (speed.tenant, speed.site, speed.device, speed.key) == (
            tenant,
            "vehicles",
            vid,
            "speed",
        )
        assert (speed.kind, speed.unit, speed.tag) == ("speed", "km/h", cls)
        assert speed.rule == DEFAULT_VEHICLE_RULES[cls]
        assert speed.levels == road.rules[DEFAULT_VEHICLE_RULES[cls].split(".")[1]].levels
        assert speed.location == veh.spec.plate
    assert demo.vehicles[("acme-chem", "tanker-01")].spec.plate == "苏A·D1234"
    assert demo.sensor("tanker-01.speed").levels[0].above == pytest.approx(80.001)


# --- shipped profiles and rule packs -------------------------------------------------------------


def test_profiles_are_shipped() -> None:
    assert {p.stem for p in DEVICE_FILES} >= {
        "coal-substation",
        "crane-monitor",
        "interlock-block",
        "lel-panel-4",
        "tank-rtu",
    }
    assert {p.stem for p in RULE_FILES} >= {
        "chem-gas",
        "chem-process",
        "coal-gas",
        "coal-methane",
        "crane",
        "road-transport",
    }


@pytest.mark.parametrize("path", DEVICE_FILES, ids=lambda p: p.stem)
def test_every_device_profile_parses(path: Path) -> None:
    prof = parse_document(read_text(path), DeviceProfile, str(path))
    assert prof.name == path.stem
    assert prof.points
    assert len({p.name for p in prof.points}) == len(prof.points)


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_every_rule_pack_parses(path: Path) -> None:
    pack = parse_document(read_text(path), RulePack, str(path))
    assert pack.name == path.stem
    assert pack.rules
    for rule in pack.rules.values():
        assert rule.levels
        for lv in rule.levels:
            if lv.above is not None:
                assert lv.recover <= lv.above
            else:
                assert lv.below is not None and lv.recover >= lv.below


def test_default_vehicle_rules_exist_in_the_shipped_pack() -> None:
    road = _pack("road-transport")
    for ref in DEFAULT_VEHICLE_RULES.values():
        pack, _, rule = ref.partition(".")
        assert pack == "road-transport" and rule in road.rules


def test_load_profiles_finds_all_files() -> None:
    profiles, packs = load_profiles(PROFILES)
    assert [p.name for p in profiles] == [p.stem for p in DEVICE_FILES]
    assert [p.name for p in packs] == [p.stem for p in RULE_FILES]


def test_a_sites_profiles_are_read_beside_the_shipped_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A site's own profile folder replaced the shipped one: a configuration using a shipped
    profile and a site's own rule pack could not load, whatever the folder (helper-81)."""
    site = tmp_path / "site" / "profiles"
    (site / "rules").mkdir(parents=True)
    (site / "devices").mkdir()
    (site / "rules" / "lpg-site.yaml").write_text(
        "name: lpg-site\nrules:\n  sphere-level:\n    kinds: [level]\n    levels:\n"
        "      - {name: hi, tier: yellow, above: 9.0, recover: 8.8}\n",
        encoding="utf-8",
    )
    other = tmp_path / "other"
    (other / "rules").mkdir(parents=True)
    chem = (PROFILES / "rules" / "chem-gas.yaml").read_text(encoding="utf-8")
    (other / "rules" / "chem-gas.yaml").write_text(chem, encoding="utf-8")
    config = copy.deepcopy(BASE)
    device = config["tenants"][0]["sites"][0]["devices"][0]
    assert device["profile"] == "tank-rtu"  # shipped
    device["sensors"][0]["rule"] = "lpg-site.sphere-level"  # the site's own
    path = tmp_path / "site" / "site.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "site")  # ./profiles
    monkeypatch.setenv("HAZARDHUB_PROFILES", str(other))
    assert default_profiles_dirs() == [PROFILES, Path("profiles").resolve().absolute(), other]
    with caplog.at_level("WARNING", logger="hazardhub.settings"):
        loaded = load(path)
    assert {"tank-rtu", "coal-substation"} <= {p.name for p in loaded.profiles}
    assert {"lpg-site", "chem-gas", "coal-methane"} <= {p.name for p in loaded.packs}
    assert [r.getMessage() for r in caplog.records] == [
        f"rule pack 'chem-gas' of {other} replaces the one of {PROFILES}"
    ]
    loaded.registry()
    # a name found nowhere says where it was looked for
    device["profile"] = "no-such-rtu"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"no-such-rtu.*profiles and rule packs read from: .*other"
    ):
        load(path).registry()
    # a folder named that is not there (a typo, a volume not mounted) would quietly run the
    # shipped profiles in place of the site's own (helper-85)
    monkeypatch.setenv("HAZARDHUB_PROFILES", f"{other}:{tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match=r"HAZARDHUB_PROFILES names .*nowhere, which is not a"):
        load(path)
    monkeypatch.delenv("HAZARDHUB_PROFILES")
    monkeypatch.chdir(tmp_path)
    assert default_profiles_dirs() == [PROFILES]  # no ./profiles here: the shipped alone


# --- a small valid config, and its breakages -----------------------------------------------------

BASE: dict[str, Any] = {
    "version": 1,
    "tenants": [
        {
            "id": "acme",
            "sites": [
                {
                    "id": "farm",
                    "kind": "chemical",
                    "devices": [
                        {
                            "id": "rtu1",
                            "profile": "tank-rtu",
                            "sensors": [
                                {
                                    "id": "t-level",
                                    "point": "level",
                                    "kind": "level",
                                    "rule": "chem-process.tank-level-10m",
                                },
                                {
                                    "id": "t-temp",
                                    "point": "temperature",
                                    "kind": "temperature",
                                    "levels": [
                                        {"name": "hi", "tier": "yellow", "above": 40, "recover": 38}
                                    ],
                                },
                            ],
                        }
                    ],
                }
            ],
            "vehicles": [{"id": "truck1", "plate": "AB-123", "class": "hazmat"}],
        }
    ],
    "api_keys": [{"name": "ops", "sha256": "0" * 64, "role": "operator"}],
}


def write(tmp_path: Path, doc: Any, name: str = "hub.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        doc if isinstance(doc, str) else yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8"
    )
    return path


def _dev(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tenants"][0]["sites"][0]["devices"][0]


def _sensor(doc: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return _dev(doc)["sensors"][i]


def test_base_config_loads(tmp_path: Path) -> None:
    reg = load_registry(write(tmp_path, BASE), [PROFILES])
    assert [s.id for s in reg.sensors] == ["t-level", "t-temp", "truck1.speed"]
    temp = reg.sensor("t-temp")
    assert temp.rule == "inline" and temp.levels[0].above == 40
    assert reg.sensor("truck1.speed").rule == "road-transport.hazmat-speed"


def test_inline_profiles_and_rule_packs(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["device_profiles"] = [
        {
            "name": "my-box",
            "points": [
                {"name": "gas", "table": "input", "address": 3, "scale": 0.1, "unit": "%LEL"}
            ],
        }
    ]
    doc["rule_packs"] = [
        {
            "name": "mine",
            "rules": {
                "gas": {"levels": [{"name": "hi", "tier": "red", "above": 20, "recover": 18}]}
            },
        }
    ]
    doc["tenants"][0]["sites"][0]["devices"].append(
        {
            "id": "box",
            "profile": "my-box",
            "sensors": [{"id": "g1", "point": "gas", "kind": "flammable_gas", "rule": "mine.gas"}],
        }
    )
    doc["tenants"][0]["vehicles"][0]["rule"] = "mine.gas"
    reg = load_registry(write(tmp_path, doc), [PROFILES])
    g1 = reg.sensor("g1")
    assert (g1.rule, g1.unit, g1.levels[0].above) == ("mine.gas", "%LEL", 20)
    assert reg.sensor("truck1.speed").rule == "mine.gas"


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    reg = load_registry(write(tmp_path, ""), [PROFILES])
    assert reg.sensors == () and reg.tenants == ()


Mutate = Callable[[dict[str, Any]], None]


def _set(getter: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        getter(doc)[key] = value

    return mutate


def _append(getter: Callable[[dict[str, Any]], list[Any]], item: Any) -> Mutate:
    def mutate(doc: dict[str, Any]) -> None:
        getter(doc).append(copy.deepcopy(item))

    return mutate


def _tenant(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tenants"][0]


def _site(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tenants"][0]["sites"][0]


def _level(doc: dict[str, Any]) -> dict[str, Any]:
    return _sensor(doc, 1)["levels"][0]


def _key(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["api_keys"][0]


_D = "tenants.0.sites.0.devices.0"
BAD_CONFIGS: list[tuple[str, Mutate, str, str]] = [
    (
        "unknown-field-device",
        _set(_dev, "colour", "red"),
        f"{_D}.colour",
        "Extra inputs are not permitted",
    ),
    (
        "unknown-field-sensor",
        _set(_sensor, "colour", "red"),
        f"{_D}.sensors.0.colour",
        "Extra inputs are not permitted",
    ),
    (
        "unknown-field-top",
        lambda d: d.update(tenant=[]),
        "tenant",
        "Extra inputs are not permitted",
    ),
    ("bad-ident-device", _set(_dev, "id", "rtu 1"), f"{_D}.id", "String should match pattern"),
    (
        "bad-ident-tenant",
        _set(_tenant, "id", "-acme"),
        "tenants.0.id",
        "String should match pattern",
    ),
    (
        "bad-ident-sensor",
        _set(_sensor, "id", "x" * 65),
        f"{_D}.sensors.0.id",
        "String should match pattern",
    ),
    (
        "bad-rule-ref",
        _set(_sensor, "rule", "nodot"),
        f"{_D}.sensors.0.rule",
        "String should match pattern",
    ),
    (
        "unknown-profile",
        _set(_dev, "profile", "nope"),
        f"{_D}.profile",
        "no device profile named 'nope'",
    ),
    (
        "unknown-point",
        _set(_sensor, "point", "volume"),
        f"{_D}.sensors.0.point",
        "profile 'tank-rtu' has no point 'volume'",
    ),
    (
        "point-used-twice",
        _set(lambda d: _sensor(d, 1), "point", "level"),
        f"{_D}.sensors.1.point",
        "point 'level' used twice",
    ),
    (
        "unknown-rule-pack",
        _set(_sensor, "rule", "nopack.x"),
        f"{_D}.sensors.0.rule",
        "rule 'nopack.x': no rule pack named 'nopack'",
    ),
    (
        "unknown-rule",
        _set(_sensor, "rule", "chem-gas.nope"),
        f"{_D}.sensors.0.rule",
        "rule 'chem-gas.nope': pack 'chem-gas' has no rule 'nope'",
    ),
    (
        "unknown-vehicle-rule",
        _set(lambda d: _tenant(d)["vehicles"][0], "rule", "road-transport.x"),
        "tenants.0.vehicles.0.rule",
        "pack 'road-transport' has no rule 'x'",
    ),
    (
        "rule-and-levels",
        _set(_sensor, "levels", [{"name": "a", "tier": "red", "above": 1, "recover": 0}]),
        f"{_D}.sensors.0",
        "give either 'rule'",
    ),
    (
        "duplicate-sensor-id",
        _set(lambda d: _sensor(d, 1), "id", "t-level"),
        f"{_D}.sensors.1",
        "sensor id 't-level' is used twice",
    ),
    (
        "duplicate-sensor-id-other-site",
        _append(
            lambda d: _tenant(d)["sites"],
            {
                "id": "farm2",
                "devices": [
                    {
                        "id": "r",
                        "profile": "tank-rtu",
                        "sensors": [{"id": "t-temp", "point": "level", "kind": "level"}],
                    }
                ],
            },
        ),
        "tenants.0.sites.1.devices.0.sensors.0",
        "sensor id 't-temp' is used twice",
    ),
    (
        "vehicle-speed-id-taken",
        _set(_sensor, "id", "truck1.speed"),
        "tenants.0.vehicles.0",
        "sensor id 'truck1.speed' is used twice",
    ),
    (
        "level-above-and-below",
        _set(_level, "below", 1),
        f"{_D}.sensors.1.levels.0",
        "a level sets exactly one of 'above' and 'below'",
    ),
    (
        "level-neither",
        lambda d: _level(d).pop("above"),
        f"{_D}.sensors.1.levels.0",
        "a level sets exactly one of 'above' and 'below'",
    ),
    (
        "recover-above-threshold",
        _set(_level, "recover", 41),
        f"{_D}.sensors.1.levels.0",
        "recover 41.0 must be <= above 40.0",
    ),
    (
        "recover-below-low-threshold",
        _set(
            lambda d: _sensor(d, 1),
            "levels",
            [{"name": "lo", "tier": "yellow", "below": 5, "recover": 4}],
        ),
        f"{_D}.sensors.1.levels.0",
        "recover 4.0 must be >= below 5.0",
    ),
    (
        "bad-tier",
        _set(_level, "tier", "purple"),
        f"{_D}.sensors.1.levels.0.tier",
        "Input should be 'blue', 'yellow', 'orange' or 'red'",
    ),
    (
        "duplicate-level-names",
        _append(
            lambda d: _sensor(d, 1)["levels"],
            {"name": "hi", "tier": "red", "above": 50, "recover": 45},
        ),
        f"{_D}.sensors.1",
        "level names must be unique",
    ),
    (
        "levels-not-rising",
        _append(
            lambda d: _sensor(d, 1)["levels"],
            {"name": "hihi", "tier": "red", "above": 30, "recover": 25},
        ),
        f"{_D}.sensors.1",
        "rising thresholds",
    ),
    (
        "above-and-below-overlap",
        _append(
            lambda d: _sensor(d, 1)["levels"],
            {"name": "lo", "tier": "yellow", "below": 45, "recover": 47},
        ),
        f"{_D}.sensors.1",
        "too high and too low at once",
    ),
    (
        "five-levels-above",
        _set(
            lambda d: _sensor(d, 1),
            "levels",
            [{"name": f"l{i}", "tier": "red", "above": i, "recover": i} for i in range(5)],
        ),
        f"{_D}.sensors.1",
        "at most four levels above",
    ),
    ("bad-kind", _set(_sensor, "kind", "radiation"), f"{_D}.sensors.0.kind", "Input should be"),
    (
        "bad-port",
        _set(_dev, "modbus", {"port": 70000}),
        f"{_D}.modbus.port",
        "less than or equal to 65535",
    ),
    (
        "bad-unit-id",
        _set(_dev, "modbus", {"unit": 248}),
        f"{_D}.modbus.unit",
        "less than or equal to 247",
    ),
    (
        "bad-grade",
        _set(_site, "major_hazard_grade", 5),
        "tenants.0.sites.0.major_hazard_grade",
        "less than or equal to 4",
    ),
    (
        "reserved-site",
        _set(_site, "id", "vehicles"),
        "tenants.0.sites.0",
        "site id 'vehicles' is reserved",
    ),
    ("bad-version", lambda d: d.update(version=2), "version", "Input should be 1"),
    (
        "bad-vehicle-class",
        _set(lambda d: _tenant(d)["vehicles"][0], "class", "bus"),
        "tenants.0.vehicles.0.class",
        "Input should be 'hazmat', 'coach' or 'charter'",
    ),
    (
        "empty-plate",
        _set(lambda d: _tenant(d)["vehicles"][0], "plate", ""),
        "tenants.0.vehicles.0.plate",
        "at least 1 character",
    ),
    (
        "enterprise-key-without-tenants",
        _set(_key, "role", "enterprise"),
        "api_keys.0",
        "a key with role 'enterprise' must name its tenants",
    ),
    (
        "viewer-key-without-tenants",
        _set(_key, "role", "viewer"),
        "api_keys.0",
        "a key with role 'viewer' must name its tenants",
    ),
    (
        "key-unknown-tenant",
        _set(_key, "tenants", ["acme", "ghost"]),
        "api_keys.0.tenants",
        "unknown tenant(s) ['ghost']",
    ),
    (
        "key-bad-digest",
        _set(_key, "sha256", "A" * 64),
        "api_keys.0.sha256",
        "String should match pattern",
    ),
    ("key-bad-role", _set(_key, "role", "root"), "api_keys.0.role", "Input should be"),
    (
        "duplicate-tenant",
        _append(lambda d: d["tenants"], {"id": "acme"}),
        "tenants.1.id",
        "tenant 'acme' is defined twice",
    ),
    (
        "duplicate-site",
        _append(lambda d: _tenant(d)["sites"], {"id": "farm"}),
        "tenants.0.sites.1.id",
        "duplicate 'farm'",
    ),
    (
        "duplicate-device",
        _append(lambda d: _site(d)["devices"], {"id": "rtu1", "profile": "tank-rtu"}),
        "tenants.0.sites.0.devices.1.id",
        "device 'rtu1' is defined twice",
    ),
    (
        "duplicate-vehicle",
        _append(lambda d: _tenant(d)["vehicles"], {"id": "truck1", "plate": "X", "class": "coach"}),
        "tenants.0.vehicles.1.id",
        "vehicle 'truck1' is defined twice",
    ),
    (
        "inline-profile-coil-not-bool",
        lambda d: d.update(
            device_profiles=[
                {
                    "name": "p",
                    "points": [{"name": "c", "table": "coil", "address": 0, "dtype": "uint16"}],
                }
            ]
        ),
        "device_profiles.0.points.0",
        "coils and discrete inputs are dtype 'bool'",
    ),
    (
        "inline-profile-past-65535",
        lambda d: d.update(
            device_profiles=[
                {"name": "p", "points": [{"name": "f", "address": 65535, "dtype": "float32"}]}
            ]
        ),
        "device_profiles.0.points.0",
        "point runs past register 65535",
    ),
    (
        "inline-profile-duplicate-points",
        lambda d: d.update(
            device_profiles=[
                {"name": "p", "points": [{"name": "a", "address": 0}, {"name": "a", "address": 1}]}
            ]
        ),
        "device_profiles.0",
        "point names must be unique",
    ),
    (
        "inline-profile-no-points",
        lambda d: d.update(device_profiles=[{"name": "p", "points": []}]),
        "device_profiles.0.points",
        "at least 1 item",
    ),
    (
        "inline-rule-without-levels",
        lambda d: d.update(rule_packs=[{"name": "p", "rules": {"r": {"levels": []}}}]),
        "rule_packs.0.rules.r.levels",
        "at least 1 item",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "problem"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_bad_config_error_names_file_path_and_problem(
    tmp_path: Path, mutate: Mutate, path: str, problem: str
) -> None:
    doc = copy.deepcopy(BASE)
    mutate(doc)
    cfg = write(tmp_path, doc, "broken-hub.yaml")
    with pytest.raises(ConfigError) as info:
        load_registry(cfg, [PROFILES])
    message = str(info.value)
    assert "broken-hub.yaml" in message
    line = next((ln for ln in message.splitlines() if ln.startswith(f"{cfg}: {path}: ")), None)
    assert line is not None, f"no line for {path!r} in:\n{message}"
    assert problem in line


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    _dev(doc)["colour"] = "red"
    _tenant(doc)["vehicles"][0]["class"] = "bus"
    cfg = write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_registry(cfg, [PROFILES])
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert all(ln.startswith(f"{cfg}: ") for ln in lines)


def test_two_tenants_may_not_share_a_tenant_id_even_without_content(tmp_path: Path) -> None:
    cfg = write(tmp_path, {"tenants": [{"id": "a"}, {"id": "b"}, {"id": "a"}]})
    with pytest.raises(ConfigError, match=r"tenants\.2\.id: tenant 'a' is defined twice"):
        load_registry(cfg, [PROFILES])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("tenants: [\n", "not valid YAML"),
        ("tenants:\n  - id: a\n   bad: indent\n", "not valid YAML"),
        ("key: [unclosed", "not valid YAML"),
        ("- 1\n- 2\n", "<root>: Input should be a valid dictionary"),
        ("just a string", "<root>: Input should be a valid dictionary"),
    ],
)
def test_unreadable_documents(tmp_path: Path, text: str, problem: str) -> None:
    cfg = write(tmp_path, text, "weird.yaml")
    with pytest.raises(ConfigError) as info:
        load_registry(cfg, [PROFILES])
    assert str(info.value).startswith(f"{cfg}: ")
    assert problem in str(info.value)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read"):
        load_registry(missing, [PROFILES])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"version: 1\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.yaml: not UTF-8 text"):
        load_registry(latin, [PROFILES])


def test_config_error_is_a_telemetry_error(tmp_path: Path) -> None:
    with pytest.raises(TelemetryError):
        load_registry(write(tmp_path, "- x\n"), [PROFILES])


# --- broken profile folders ----------------------------------------------------------------------


def _profiles(tmp_path: Path, devices: dict[str, str], rules: dict[str, str]) -> Path:
    root = tmp_path / "profiles"
    (root / "devices").mkdir(parents=True)
    (root / "rules").mkdir()
    for name, text in devices.items():
        (root / "devices" / name).write_text(text, encoding="utf-8")
    for name, text in rules.items():
        (root / "rules" / name).write_text(text, encoding="utf-8")
    return root


def test_profile_name_must_match_file_name(tmp_path: Path) -> None:
    root = _profiles(tmp_path, {"box.yaml": "name: crate\npoints: [{name: a, address: 0}]\n"}, {})
    with pytest.raises(ConfigError, match=r"box\.yaml: name: 'crate' must match the file name"):
        load_profiles(root)


def test_rule_pack_name_must_match_file_name(tmp_path: Path) -> None:
    text = "name: other\nrules: {r: {levels: [{name: a, tier: red, above: 1, recover: 0}]}}\n"
    root = _profiles(tmp_path, {}, {"pack.yaml": text})
    with pytest.raises(ConfigError, match=r"pack\.yaml: name: 'other' must match"):
        load_profiles(root)


def test_bad_profile_file_error_names_it(tmp_path: Path) -> None:
    root = _profiles(
        tmp_path, {"box.yaml": "name: box\npoints: [{name: a, address: 0, dtype: int64}]\n"}, {}
    )
    with pytest.raises(ConfigError) as info:
        load_registry(write(tmp_path, BASE), [PROFILES, root])
    assert str(info.value).startswith(f"{root / 'devices' / 'box.yaml'}: points.0.dtype: ")


def test_bad_rule_pack_file_error_names_it(tmp_path: Path) -> None:
    text = (
        "name: pack\nrules: {r: {levels: [{name: a, tier: red, above: 1, below: 0, recover: 0}]}}\n"
    )
    root = _profiles(tmp_path, {}, {"pack.yaml": text})
    with pytest.raises(ConfigError) as info:
        load_registry(write(tmp_path, BASE), [PROFILES, root])
    message = str(info.value)
    assert message.startswith(f"{root / 'rules' / 'pack.yaml'}: rules.r.levels.0: ")
    assert "exactly one of 'above' and 'below'" in message


def test_profiles_from_a_second_folder_are_usable(tmp_path: Path) -> None:
    root = _profiles(
        tmp_path,
        {"box.yaml": "name: box\npoints: [{name: a, table: coil, address: 5, dtype: bool}]\n"},
        {},
    )
    doc = copy.deepcopy(BASE)
    _site(doc)["devices"].append(
        {"id": "b", "profile": "box", "sensors": [{"id": "b-a", "point": "a", "kind": "other"}]}
    )
    cfg = write(tmp_path, doc)
    reg = load(cfg, [PROFILES, root]).registry()
    assert reg.sensor("b-a").device == "b"
    with pytest.raises(
        ConfigError, match=r"devices\.1\.profile: device 'b': no device profile named 'box'"
    ):
        load_registry(cfg, [PROFILES])


def test_build_registry_checks_cross_references_of_a_model() -> None:
    """`build_registry` without profiles: every device profile reference is unresolved."""
    config = HubConfig.model_validate(BASE)
    with pytest.raises(ConfigError, match=r"^here: tenants\.0\.sites\.0\.devices\.0\.profile: "):
        build_registry(config, source="here")


def test_the_errors_of_devices_sensors_and_vehicles_are_said_at_once() -> None:
    """An engineer's file with three typos took three runs of `hazardhub check`, one error each
    (helper noted it at stop 21): they are said together, and a voting group naming a sensor
    that failed adds no error of its own."""
    doc = copy.deepcopy(BASE)
    site = doc["tenants"][0]["sites"][0]
    site["devices"][0]["sensors"][0]["point"] = "levle"  # a typo
    del site["devices"][0]["sensors"][1]["levels"]
    site["devices"][0]["sensors"][1]["rule"] = "chem-process.no-such-rule"
    site["devices"].append({"id": "rtu2", "profile": "tank-rtu-x", "sensors": []})
    site["groups"] = [
        {
            "id": "vote",
            "name": "two-of",
            "tier": "red",
            "k": 1,
            "at_level": 1,
            "sensors": ["t-level", "t-temp"],
        }
    ]
    doc["tenants"][0]["vehicles"] = [
        {"id": "v1", "plate": "A1", "class": "hazmat", "rule": "road-transport.no-such"}
    ]
    profiles, packs = load_profiles(PROFILES)
    with pytest.raises(ConfigError) as info:
        build_registry(HubConfig.model_validate(doc), profiles, packs, "site.yaml")
    said = str(info.value).splitlines()
    assert len(said) == 4, said
    assert said[0].startswith("site.yaml: tenants.0.sites.0.devices.0.sensors.0.point: ")
    assert said[1].startswith("site.yaml: tenants.0.sites.0.devices.0.sensors.1.rule: ")
    assert said[2].startswith("site.yaml: tenants.0.sites.0.devices.1.profile: ")
    assert said[3].startswith("site.yaml: tenants.0.vehicles.0.rule: ")


def test_a_vehicle_can_leave_its_speed_to_the_fleet_overspeed_alone() -> None:
    """`rule: none`: no per-reading speed alarm (kind `above`) beside the fleet's overspeed."""
    import numpy as np

    from alerts.evaluate import CoreState, evaluate
    from alerts.state import Readings
    from alerts.table import compile_table

    profiles, packs = load_profiles(PROFILES)
    text = """
version: 1
tenants:
  - id: acme
    vehicles:
      - {id: quiet, plate: A1, class: hazmat, rule: none}
      - {id: loud, plate: A2, class: hazmat}
"""
    reg = build_registry(parse_document(text, HubConfig, "t"), profiles, packs, "t")
    quiet, loud = reg.sensor("quiet.speed"), reg.sensor("loud.speed")
    assert quiet is not None and loud is not None
    assert (quiet.rule, quiet.levels) == ("", ())
    assert loud.rule == DEFAULT_VEHICLE_RULES["hazmat"] and loud.levels
    table = compile_table(reg.sensors)
    n = 2
    batch = Readings(
        np.array([quiet.index, loud.index], np.int32),
        np.full(n, 1_000, np.int64),
        np.full(n, 95.0),
        np.zeros(n, np.uint8),
    )
    _, tr, _ = evaluate(table, batch, CoreState.empty(len(reg.sensors)), 2_000)
    assert {reg.sensors[s].id for s, *_ in tr.rows()} == {"loud.speed"}
    with pytest.raises(ConfigError, match="rule"):
        parse_document(text.replace("rule: none", "rule: nothing"), HubConfig, "t")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_example_configuration_loads(path: Path) -> None:
    """The shipped example configurations (the demo's, the crane site's) build a registry with
    the shipped profiles and packs, as `hazardhub check` does."""
    reg = load(path).registry()
    assert reg.sensors


@pytest.mark.parametrize(
    ("vehicles", "errors"),
    [
        ([], [(("vehicles",), "at least 1 vehicle is needed")]),
        # an item's error comes alone, not with a second "at least 1 item ... not 0"
        ([7], [(("vehicles", 0), "valid string")]),
    ],
)
def test_a_corridors_vehicles_error_comes_alone(vehicles: list[object], errors: list) -> None:
    from pydantic import ValidationError

    from telemetry.fleetconfig import CorridorFence

    shape = {"polyline": [[31.0, 120.0], [31.1, 120.1]], "buffer_m": 200}
    with pytest.raises(ValidationError) as info:
        CorridorFence.model_validate({"id": "r1", "vehicles": vehicles, **shape})
    got = info.value.errors()
    assert [e["loc"] for e in got] == [loc for loc, _ in errors]
    assert all(text in e["msg"] for e, (_, text) in zip(got, errors, strict=True))


@pytest.mark.parametrize(
    ("word", "ok"),
    [
        ({"dtype": "uint16"}, True),
        ({"dtype": "int32"}, True),
        ({"dtype": "uint16", "scale": 0.1}, False),
        ({"dtype": "uint16", "offset": -1}, False),
        ({"dtype": "float32"}, False),
        ({"dtype": "uint16", "current": {"eng_min": 0, "eng_max": 100}}, False),
    ],
)
def test_a_status_point_is_an_integer_word_read_as_it_is(word: dict[str, Any], ok: bool) -> None:
    """Its bits are tested on the value read: a scaled one tested the bits of the engineering
    value, a float's made no sense (helper-96)."""
    doc = {
        "name": "det",
        "points": [{"name": "gas", "address": 0}, {"name": "state", "address": 1, **word}],
        "status": [{"point": "state", "bit": 3, "quality": "sensor_fault"}],
    }
    if ok:
        DeviceProfile.model_validate(doc)
    else:
        with pytest.raises(ValueError, match="status point 'state' must be an integer word"):
            DeviceProfile.model_validate(doc)
