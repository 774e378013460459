"""Rule fields of the alert core in the configuration: verification and voting groups."""

from __future__ import annotations

import pytest

from alerts.table import RATE, compile_table
from hazardhub.settings import load_profiles
from telemetry.config import HubConfig
from telemetry.errors import ConfigError
from telemetry.registry import build_registry, parse_document

from e2e_helpers import ROOT, mine_registry

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
    # its members' kind (a subscription to flammable gas hears the area's alarm, helper-146);
    # members of several kinds: "other"
    assert group.kind == "flammable_gas"
    mixed = (GAS % 2).replace(
        "{id: gd-c, point: lel3, kind: flammable_gas, rule: chem-gas.flammable-lel}",
        "{id: gd-c, point: lel3, kind: other,"
        " levels: [{name: l1, tier: yellow, above: 25, recover: 23}]}",
    )
    mixed_group = mine_registry(1502, 1.0, mixed).sensor("dike-101")
    assert mixed_group is not None and mixed_group.kind == "other"


def test_group_errors_name_the_place():
    with pytest.raises(Exception, match="more than the 3 sensors"):
        mine_registry(1502, 1.0, GAS % 4)
    with pytest.raises(ConfigError, match=r"groups\.0\.sensors: no sensor 'gd-x'"):
        mine_registry(1502, 1.0, (GAS % 2).replace("gd-c]", "gd-x]"))


OTHER = """
  - id: other
    sites:
      - id: s
        devices:
          - id: d
            profile: coal-substation
            sensors:
              - {id: x-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1,
                 verify: {%s, expect_below: 0.5, within_s: 2}}
              - {id: x-feed, point: feed, kind: power_feed}
              - {id: x-co, point: co, kind: co}
"""


def test_verify_must_name_a_sensor_of_the_tenant():
    with pytest.raises(ConfigError, match=r"verify\.sensor: no sensor 'feed' in its tenant"):
        mine_registry(1502, 1.0, OTHER % "sensor: feed")
    with pytest.raises(ConfigError, match=r"verify\.sensor: no sensor 'nope'"):
        mine_registry(1502, 1.0, OTHER % "sensor: nope")


def test_verify_also_names_more_feeds_each_once_and_of_the_tenant():
    reg = mine_registry(1502, 1.0, OTHER % "sensor: x-feed, also: [x-co]")
    (plan,) = compile_table(reg.sensors).verify
    assert plan.feedbacks == (reg.sensor("x-feed").index, reg.sensor("x-co").index)
    with pytest.raises(ConfigError, match=r"verify\.also: no sensor 'feed' in its tenant"):
        mine_registry(1502, 1.0, OTHER % "sensor: x-feed, also: [feed]")
    with pytest.raises(ConfigError, match=r"verify\.also: not itself"):
        mine_registry(1502, 1.0, OTHER % "sensor: x-feed, also: [x-t1]")
    with pytest.raises(Exception, match="each feedback sensor once"):
        mine_registry(1502, 1.0, OTHER % "sensor: x-feed, also: [x-feed]")


TREND = """
  - id: chem3
    sites:
      - id: farm
        devices:
          - id: rtu
            profile: tank-rtu
            sensors:
              - {id: lvl, point: level, kind: level, rule: chem-process.tank-level-hilo%s}
"""


def test_rate_and_early_warning_come_from_the_rule_and_the_sensor_wins():
    pack = """
rule_packs:
  - name: site
    rules:
      ch4:
        levels: [{name: alarm, tier: yellow, above: 1.0, recover: 1.0}]
        rate: {per_min: 0.5, window_s: 60}
        early_warning: {window_s: 30, horizon_s: 120}
"""
    text = TREND % ",\n                  rate: {per_min: 0.2, window_s: 30, tier: red}"
    reg = mine_registry(1502, 1.0, text)
    lvl = reg.sensor("lvl")
    assert lvl is not None and lvl.rate is not None and lvl.rate.per_min == 0.2
    assert lvl.early_warning is None
    table = compile_table(reg.sensors)
    assert table.trends == 1 and table.trend_sensor.tolist() == [lvl.index]
    assert table.rate_window.tolist() == [30_000] and table.rate_off.tolist() == [0.2 * 0.8]
    assert table.describe(lvl.index, RATE, 1)[:2] == ("rate_of_rise", "red")
    config = parse_document(
        pack
        + """
tenants:
  - id: m
    sites:
      - id: f
        devices:
          - id: sub
            profile: coal-substation
            sensors: [{id: t1, point: ch4_t1, kind: methane, rule: site.ch4}]
""",
        HubConfig,
        "x",
    )
    profiles, packs = load_profiles(ROOT / "profiles")
    t1 = build_registry(config, profiles, packs).sensor("t1")
    assert t1 is not None and t1.rate is not None and t1.early_warning is not None
    assert (t1.rate.per_min, t1.early_warning.horizon_s) == (0.5, 120)


def test_trend_option_errors():
    with pytest.raises(Exception, match="early_warning: needs a level above"):
        mine_registry(
            1502,
            1.0,
            TREND.replace("rule: chem-process.tank-level-hilo%s", "")
            .replace("kind: level,", "kind: level, early_warning: {window_s: 10, horizon_s: 5},")
            .replace(
                "{id: lvl,", "{id: lvl, levels: [{name: lo, tier: blue, below: 1, recover: 2}],"
            ),
        )
    with pytest.raises(Exception, match="need a rule or levels"):
        mine_registry(
            1502,
            1.0,
            TREND.replace(
                "rule: chem-process.tank-level-hilo%s", "rate: {per_min: 1, window_s: 5}"
            ),
        )
    with pytest.raises(Exception, match="recover_factor"):
        mine_registry(1502, 1.0, TREND % ", rate: {per_min: 1, window_s: 5, recover_factor: 2}")


def _one_sensor(sensor: str) -> HubConfig:
    """One sensor on a generic analog input, whose unit the sensor's `unit:` gives (a profile
    point that declares one may not be given another, helper-237)."""
    return parse_document(
        f"""
device_profiles:
  - name: ai-1
    points: [{{name: lel1, table: input, address: 0, dtype: uint16, scale: 0.1}}]
tenants:
  - id: c
    sites:
      - id: f
        devices:
          - id: tx
            profile: ai-1
            sensors: [{sensor}]
""",
        HubConfig,
        "x",
    )


def test_maintenance_limit_comes_from_the_pack_and_the_sensor_wins():
    """The shipped gas packs limit calibration and manual time to 2 h; a sensor's own limit wins;
    a sensor that is judged for nothing cannot have one."""
    from alerts.table import MAINTENANCE

    profiles, packs = load_profiles(ROOT / "profiles")
    toxic = "id: nh3, point: lel1, kind: toxic_gas, unit: '%OEL', rule: chem-gas.toxic-oel"
    reg = build_registry(_one_sensor("{" + toxic + "}"), profiles, packs)
    nh3 = reg.sensor("nh3")
    assert nh3 is not None and nh3.maintenance is not None and nh3.maintenance.after_s == 7200
    own = "{" + toxic + ", maintenance: {after_s: 900, tier: orange, action: call the fitter}}"
    reg = build_registry(_one_sensor(own), profiles, packs)
    table = compile_table(reg.sensors)
    assert table.maint_ms.tolist()[:1] == [900_000]
    assert table.describe(0, MAINTENANCE, 1) == ("overdue", "orange", "call the fitter")
    with pytest.raises(Exception, match="'maintenance' needs levels"):
        build_registry(
            _one_sensor("{id: x, point: lel1, kind: toxic_gas, maintenance: {after_s: 60}}"),
            profiles,
            packs,
        )
    # a verification's feedback may have it (a power feed forced on by hand, helper-118)
    text = (ROOT / "examples" / "demo.yaml").read_text()
    feed = "{id: face1301-feed, point: feed, kind: power_feed"
    assert text.count(feed) == 1
    text = text.replace(feed, feed + ", maintenance: {after_s: 3600}")
    reg = build_registry(parse_document(text, HubConfig, "demo"), profiles, packs)
    table = compile_table(reg.sensors)
    fed = reg.sensor("face1301-feed")
    assert fed is not None and int(table.maint_ms[fed.index]) == 3_600_000
    with pytest.raises(Exception, match="greater than or equal to 1"):
        _one_sensor("{" + toxic + ", maintenance: {after_s: 0.5}}")


def test_calibration_interval_comes_from_the_methane_pack_and_the_sensor_wins():
    """The coal-methane pack asks a calibration every 15 days (DOMAIN 1.3), a laser sensor's own
    interval (exempted for 6 months) wins; other packs ask none; a sensor judged for nothing
    cannot have one; the interval is a positive number of days."""
    from alerts.table import CALIBRATION_DUE

    reg = mine_registry(1502, 1.0)
    t1 = reg.sensor("ch4-t1")
    assert t1 is not None and t1.calibration_due is not None
    assert t1.calibration_due.every_days == 15
    assert reg.sensor("co") is not None and reg.sensor("co").calibration_due is None
    table = compile_table(reg.sensors)
    assert int(table.calib_ms[t1.index]) == 15 * 86_400_000 and table.has_calib
    assert table.describe(t1.index, CALIBRATION_DUE, 1)[:2] == ("calibration_overdue", "yellow")
    profiles, packs = load_profiles(ROOT / "profiles")
    toxic = "id: nh3, point: lel1, kind: toxic_gas, unit: '%OEL', rule: chem-gas.toxic-oel"
    own = "{" + toxic + ", calibration_due: {every_days: 180, tier: orange, action: 送检}}"
    table = compile_table(build_registry(_one_sensor(own), profiles, packs).sensors)
    assert int(table.calib_ms[0]) == 180 * 86_400_000
    assert table.describe(0, CALIBRATION_DUE, 1) == ("calibration_overdue", "orange", "送检")
    with pytest.raises(Exception, match="'calibration_due' needs levels"):
        build_registry(
            _one_sensor("{id: x, point: lel1, kind: toxic_gas, calibration_due: {every_days: 1}}"),
            profiles,
            packs,
        )
    # 0: not checked (a substation whose readings do not flag its calibrations)
    off = "{id: t1, point: lel1, kind: methane, unit: '%CH4', rule: coal-methane.face-t1, "
    off += "calibration_due: {every_days: 0}}"
    table = compile_table(build_registry(_one_sensor(off), profiles, packs).sensors)
    assert int(table.calib_ms[0]) == 0 and not table.has_calib
    with pytest.raises(Exception, match="greater than or equal to 0"):
        _one_sensor("{" + toxic + ", calibration_due: {every_days: -1}}")


def test_names_locations_and_tags_are_one_printable_line():
    """helper-122: names go into e-mail subjects, CSV cells and log lines: a control character
    is refused, a YAML folded name's line break stripped, 200 characters at most."""
    text = """
version: 1
tenants:
  - id: t
    name: >
      北方煤业
    sites:
      - id: s
        name: "%s"
"""
    ok = parse_document(text % "一号井", HubConfig, "x")
    assert (ok.tenants[0].name, ok.tenants[0].sites[0].name) == ("北方煤业", "一号井")
    for bad in ("a\\u001b[2J", "a\\u0000b", "x" * 201):
        with pytest.raises(ConfigError, match=r"sites\.0\.name"):
            parse_document(text % bad, HubConfig, "x")
