"""Rule fields of the alert core in the configuration: verification and voting groups."""

from __future__ import annotations

import pytest

from alerts.table import compile_table
from telemetry.errors import ConfigError

from e2e_helpers import mine_registry

GAS = """
  - id: chem2
    sites:
      - id: tank-farm
        devices:
          - id: gas-panel
            profile: lel-panel-4
            sensors:
              - {id: gd-a, point: lel1, kind: flammable_gas, rule: chem-gas.flammable-lel}
              - {id: gd-b, point: lel2, kind: flammable_gas, rule: chem-gas.flammable-lel}
              - {id: gd-c, point: lel3, kind: flammable_gas, rule: chem-gas.flammable-lel}
        groups:
          - {id: dike-101, sensors: [gd-a, gd-b, gd-c], k: %s}
"""


def test_a_voting_group_is_judged_as_a_sensor_of_its_site():
    reg = mine_registry(1502, 1.0, GAS % 2)
    group = reg.sensor("dike-101")
    assert group is not None and group.rule == "vote" and group.site == "tank-farm"
    assert [reg.sensors[m].id for m in group.members] == ["gd-a", "gd-b", "gd-c"]
    (level,) = group.levels
    assert (level.name, level.tier, level.above) == ("area_level2", "red", 2)
    table = compile_table(reg.sensors)
    assert table.group_of[reg.sensor("gd-b").index] == group.index


def test_group_errors_name_the_place():
    with pytest.raises(Exception, match="more than the 3 sensors"):
        mine_registry(1502, 1.0, GAS % 4)
    with pytest.raises(ConfigError, match=r"groups\.0\.sensors: no sensor 'gd-x'"):
        mine_registry(1502, 1.0, (GAS % 2).replace("gd-c]", "gd-x]"))


def test_verify_must_name_a_sensor_of_the_tenant():
    extra = """
  - id: other
    sites:
      - id: s
        devices:
          - id: d
            profile: coal-substation
            sensors:
              - {id: x-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1,
                 verify: {sensor: %s, expect_below: 0.5, within_s: 2}}
"""
    with pytest.raises(ConfigError, match=r"verify\.sensor: no sensor 'feed' in its tenant"):
        mine_registry(1502, 1.0, extra % "feed")
    with pytest.raises(ConfigError, match=r"verify\.sensor: no sensor 'nope'"):
        mine_registry(1502, 1.0, extra % "nope")
