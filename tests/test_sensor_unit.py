"""A sensor's `unit:` against its point's (helper-237): an engineer's radar point in mm
(`scale: 1, unit: mm`) bound to a tank rule in m was refused with "...or set the sensor's
`unit:` if the point is really in the rule's"; setting `unit: m` on the sensor, the point still
in mm, was taken, and HI 8.5 would have been compared with millimetres. The error now leads
with the fix that makes the numbers right (scale the point), and a sensor's `unit:` that
contradicts its point's is refused; on a point whose profile leaves the unit open it still
gives the unit."""

from __future__ import annotations

from pathlib import Path

import pytest

from hazardhub.settings import load_profiles
from telemetry.config import HubConfig
from telemetry.errors import ConfigError
from telemetry.registry import build_registry, parse_document

ROOT = Path(__file__).resolve().parent.parent

SITE = """
version: 1
device_profiles:
  - name: radar
    points: [{{name: level, address: 0, dtype: uint16, scale: {scale}{unit}}}]
tenants:
  - id: acme
    sites:
      - id: tanks
        devices:
          - id: radar-t1
            profile: radar
            sensors:
              - {{id: lt-101, point: level, kind: level, rule: chem-process.tank-level-10m{own}}}
"""


def _build(scale: float, unit: str, own: str = ""):
    profiles, packs = load_profiles(ROOT / "profiles")
    text = SITE.format(
        scale=scale,
        unit=f", unit: {unit}" if unit else "",
        own=f", unit: {own}" if own else "",
    )
    return build_registry(parse_document(text, HubConfig, "site.yaml"), profiles, packs)


def test_a_point_in_mm_for_a_rule_in_m_is_told_to_scale_the_point():
    with pytest.raises(ConfigError) as err:
        _build(1, "mm")
    text = str(err.value)
    assert "sensors.0.rule" in text and "sensor 'lt-101' reads 'mm'" in text
    fix = text.index("`scale: 0.001` with `unit: m` on the point")
    assert fix < text.index("its own levels"), text  # the right fix comes first
    assert "really in the rule's" not in text


def test_a_sensor_unit_that_contradicts_its_points_is_refused():
    with pytest.raises(ConfigError) as err:
        _build(1, "mm", own="m")
    text = str(err.value)
    assert "sensors.0.unit" in text and "sensor 'lt-101' says `unit: m`" in text
    assert "'mm'" in text and "`scale: 0.001` with `unit: m` on the point" in text
    # the same unit written otherwise is no contradiction
    assert _build(0.001, "m", own=" M ").sensor("lt-101") is not None


def test_the_fixes_the_errors_give_are_taken():
    # the point scaled into metres, in its profile
    assert _build(0.001, "m").sensor("lt-101") is not None
    # a point whose profile leaves the unit open: the sensor's `unit:` gives it
    got = _build(0.001, "", own="m").sensor("lt-101")
    assert got is not None and got.unit == "m"


def test_a_generic_4_20_ma_transmitter_is_told_to_set_its_span():
    """The shipped gas-transmitter-4-20ma reads %LEL: a ppm sensor on it is told to copy the
    profile with its span and unit, not to scale it."""
    profiles, packs = load_profiles(ROOT / "profiles")
    text = """
tenants:
  - id: acme
    sites:
      - id: plant
        devices:
          - id: tx
            profile: gas-transmitter-4-20ma
            sensors: [{id: nh3-01, point: gas, kind: toxic_gas, unit: ppm, rule: chem-gas.nh3-ppm}]
"""
    with pytest.raises(ConfigError) as err:
        build_registry(parse_document(text, HubConfig, "site.yaml"), profiles, packs)
    assert "the `current:` span (`eng_min`, `eng_max`) in ppm and `unit: ppm`" in str(err.value)


def test_the_ammonia_example_of_rules_md_loads():
    """docs/rules.md showed `unit: ppm` on a sensor of the shipped %LEL transmitter, which is now
    refused; its example reads ppm through a profile of its own and loads."""
    doc = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    block = doc[doc.index("  - name: nh3-transmitter-4-20ma-100ppm") :]
    profile, sensor = block.split("# ... the device", 1)
    sensor = sensor[sensor.index("- {id: nh3-01") : sensor.index("```")]
    text = (
        "device_profiles:\n"
        + profile
        + "tenants:\n  - id: acme\n    sites:\n      - id: plant\n        devices:\n"
        + "          - id: tx\n            profile: nh3-transmitter-4-20ma-100ppm\n"
        + "            sensors:\n"
        + "".join(
            f"              {line.strip()}\n"
            if line.strip().startswith("-")
            else f"                {line.strip()}\n"
            for line in sensor.strip().splitlines()
        )
    )
    profiles, packs = load_profiles(ROOT / "profiles")
    registry = build_registry(parse_document(text, HubConfig, "rules.md"), profiles, packs)
    assert registry.sensor("nh3-01").unit == "ppm"
