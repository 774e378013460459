"""A rule is for the kinds of sensor it names: a methane point (% CH4) given the flammable-gas rule
(25/50 %LEL) would never alarm at the power-cut level, so the configuration is refused, naming
the place; every shipped rule says which kinds it is for."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardhub.settings import load_profiles, read_text
from telemetry.config import HubConfig, RulePack
from telemetry.errors import ConfigError
from telemetry.registry import build_registry, parse_document

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "profiles" / "rules").glob("*.yaml"))

CONFIG = """
version: 1
device_profiles:
  - name: p
    points: [{{name: a, address: 0, dtype: uint16}}]
tenants:
  - id: t
    sites:
      - id: s
        devices:
          - id: d
            profile: p
            sensors:
              - {{id: x, point: a, kind: {kind}, rule: {rule}}}
"""


def build(kind: str, rule: str):
    profiles, packs = load_profiles(ROOT / "profiles")
    doc = parse_document(CONFIG.format(kind=kind, rule=rule), HubConfig, "site.yaml")
    return build_registry(doc, profiles, packs)


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("methane", "chem-gas.flammable-lel"),
        ("oxygen", "coal-methane.face-t1"),
        ("flammable_gas", "coal-methane.face-t1"),
        ("temperature", "chem-process.tank-pressure-lpg"),
    ],
)
def test_a_rule_for_another_kind_is_refused_with_the_place(kind, rule):
    with pytest.raises(ConfigError) as err:
        build(kind, rule)
    text = str(err.value)
    assert "tenants.0.sites.0.devices.0.sensors.0.rule" in text
    assert f"not {kind!r}" in text and rule in text


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("methane", "coal-methane.face-t1"),
        ("flammable_gas", "chem-gas.flammable-lel"),
        ("co", "chem-gas.toxic-oel"),
        ("co", "coal-gas.co"),
        ("level", "chem-process.tank-level-hilo"),
    ],
)
def test_a_rule_for_the_kind_is_taken(kind, rule):
    assert build(kind, rule).sensor("x").rule == rule


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_every_shipped_rule_says_which_kinds_it_is_for(path):
    pack = parse_document(read_text(path), RulePack, str(path))
    assert all(rule.kinds for rule in pack.rules.values()), pack.name


def test_a_level_error_comes_alone_and_a_rule_needs_levels():
    """pydantic's min_length counted what was left after a bad level and added 'Tuple should
    have at least 1 item' to every level's error."""
    from pydantic import ValidationError

    from telemetry.ruleconfig import RuleSpec

    with pytest.raises(ValidationError) as err:
        RuleSpec.model_validate(
            {"levels": [{"name": "a", "tier": "purple", "above": 1, "recover": 1}]}
        )
    assert [e["loc"] for e in err.value.errors()] == [("levels", 0, "tier")]
    with pytest.raises(ValidationError) as err:
        RuleSpec.model_validate({"levels": []})
    (only,) = err.value.errors()
    assert only["loc"] == ("levels",) and "a rule without levels raises nothing" in only["msg"]


UNITS = """
version: 1
device_profiles:
  - name: p
    points: [{{name: a, address: 0, dtype: uint16, unit: "{unit}"}}]
tenants:
  - id: t
    sites:
      - id: s
        devices:
          - id: d
            profile: p
            sensors:
              - {{id: x, point: a, kind: {kind}, rule: {rule}{extra}}}
"""


def build_units(unit: str, kind: str, rule: str, extra: str = ""):
    profiles, packs = load_profiles(ROOT / "profiles")
    text = UNITS.format(unit=unit, kind=kind, rule=rule, extra=extra)
    return build_registry(parse_document(text, HubConfig, "site.yaml"), profiles, packs)


@pytest.mark.parametrize(
    ("unit", "kind", "rule"),
    [
        ("ppm", "toxic_gas", "chem-gas.toxic-oel"),  # H2S at 100 ppm is 10 times its OEL
        ("ppm", "co", "chem-gas.toxic-idlh"),
        ("%VOL", "flammable_gas", "chem-gas.flammable-lel"),
        # the coal packs (helper-72): CO in % never reaches 24; a methane head in %LEL
        ("%", "co", "coal-gas.co"),
        ("%LEL", "methane", "coal-methane.face-t1"),
        ("ppm", "oxygen", "coal-gas.oxygen-intake"),
        ("t", "load", "crane.load-pct"),  # 90 t is not 90 % of the rated load
        # they had no units (helper-89): a tilt in mrad, ambient O2 in ppm, a speed in m/s
        ("mrad", "tilt", "crane.tilt-example"),
        ("ppm", "oxygen", "chem-gas.oxygen-ambient"),
        ("m/s", "speed", "road-transport.hazmat-speed"),
        # the per-gas rules are in ppm (% VOL for H2): a %OEL or %LEL transmitter needs the others
        ("%OEL", "toxic_gas", "chem-gas.nh3-ppm"),
        ("%LEL", "flammable_gas", "chem-gas.h2-vol"),
        # an open-path detector in LEL·m is not a point detector in %LEL, nor in %LEL·m
        ("LEL·m", "flammable_gas", "chem-gas.flammable-lel"),
        ("%LEL·m", "flammable_gas", "chem-gas.flammable-open-path"),
    ],
)
def test_a_rule_in_another_unit_is_refused_with_the_place(unit, kind, rule):
    with pytest.raises(ConfigError) as err:
        build_units(unit, kind, rule)
    text = str(err.value)
    assert "tenants.0.sites.0.devices.0.sensors.0.rule" in text
    assert f"sensor 'x' reads {unit!r}" in text and rule in text


def test_a_rule_in_the_sensors_unit_is_taken_spaces_and_case_aside():
    assert build_units("% lel", "flammable_gas", "chem-gas.flammable-lel").sensor("x").unit
    # the sensor gives the unit of a point its profile leaves open (a transmitter set to %OEL)
    got = build_units("", "toxic_gas", "chem-gas.toxic-oel", ', unit: "%OEL"').sensor("x")
    assert got is not None and got.unit == "%OEL"
    # a point without a unit cannot be checked; a rule without units takes any
    assert build_units("", "toxic_gas", "chem-gas.toxic-oel").sensor("x") is not None
    assert build_units("state", "interlock", "chem-process.interlock").sensor("x") is not None
    for unit, kind, rule in (
        ("ppm", "co", "coal-gas.co"),
        ("°", "tilt", "crane.tilt-example"),
        ("%", "oxygen", "chem-gas.oxygen-ambient"),
        ("km/h", "speed", "road-transport.hazmat-speed"),
        ("%CH4", "methane", "coal-methane.face-t1"),
        ("% vol", "methane", "coal-methane.return-t2"),
        ("%", "oxygen", "coal-gas.oxygen-intake"),
        # the notations of Chinese instruments (helper-76): ℃ and full-width ％ fold to °C, %
        ("℃", "temperature", "chem-process.tank-temperature"),
        ("％", "methane", "coal-methane.face-t1"),
        ("CH4%", "methane", "coal-methane.face-t1"),
        ("O2%", "oxygen", "coal-gas.oxygen-intake"),
        ("μmol/mol", "co", "coal-gas.co"),
        ("MPa(G)", "pressure", "chem-process.tank-pressure-lpg"),
        # a detector of one named gas in ppm takes its gas's rule (helper-173)
        ("ppm", "toxic_gas", "chem-gas.nh3-ppm"),
        ("ppm", "toxic_gas", "chem-gas.cl2-ppm"),
        ("ppm", "toxic_gas", "chem-gas.h2s-ppm"),
        ("ppm", "co", "chem-gas.co-ppm"),
        ("%VOL", "flammable_gas", "chem-gas.h2-vol"),
        ("LEL·m", "flammable_gas", "chem-gas.flammable-open-path"),
        ("LEL.m", "flammable_gas", "chem-gas.flammable-open-path"),
    ):
        assert build_units(unit, kind, rule).sensor("x") is not None


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_every_shipped_level_says_what_to_do(path):
    """An operator's alarm list shows each level's action: a red interlock trip or a methane
    alarm without one left the duty desk with nothing to do (helper-69)."""
    pack = parse_document(read_text(path), RulePack, str(path))
    missing = [
        f"{name}.{level.name}"
        for name, rule in pack.rules.items()
        for level in rule.levels
        if not level.action.strip()
    ]
    assert missing == [], pack.name
