"""Alert state over a configuration change (alerts.reload): a renumbered sensor with the same rules
goes on as if nothing happened; one whose rules changed starts afresh; secrets stay hidden."""

from __future__ import annotations

import numpy as np
import pytest

from alerts.evaluate import CoreState, evaluate
from alerts.reload import remap_core, sensor_keys
from alerts.state import Readings
from alerts.table import ACTION, compile_table
from api.configadmin import HIDDEN, ConfigRefusedError, mask, unmask

DELAYED = """
      - id: yard
        devices:
          - id: kj-yard
            profile: coal-substation
            modbus: {host: 127.0.0.1, port: 1502, unit: 2}
            sensors:
              - id: slow-ch4
                point: ch4_t0
                kind: methane
                levels:
                  - {name: alarm, tier: yellow, above: 1.0, recover: 0.8, on_delay_s: 10}
"""
# the same sensor, with a new device listed before it: every index moves
RENUMBERED = DELAYED.replace(
    "      - id: yard\n        devices:\n",
    "      - id: yard\n        devices:\n"
    "          - id: kj-new\n            profile: coal-substation\n"
    "            modbus: {host: 127.0.0.1, port: 1502, unit: 3}\n"
    "            sensors:\n"
    "              - {id: new-ch4, point: ch4_t0, kind: methane, rule: coal-methane.face-t1}\n",
)


def _registry(sites: str):
    from hazardhub.settings import load_profiles
    from telemetry.config import HubConfig
    from telemetry.registry import build_registry, parse_document

    from e2e_helpers import ROOT

    text = f"""
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        devices:
          - id: kj-sub-3
            profile: coal-substation
            modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
            sensors:
              - {{id: ch4-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1}}
{sites}
"""
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(parse_document(text, HubConfig, "t"), profiles, packs, "t")


def _judge(reg, table, state, rows, now):
    """rows: (sensor id, ts, value)"""
    idx = np.array([reg.sensor(s).index for s, _, _ in rows], np.int32)
    ts = np.array([t for _, t, _ in rows], np.int64)
    val = np.array([v for _, _, v in rows])
    q = np.zeros(len(rows), np.uint8)
    state, tr, _ = evaluate(table, Readings(idx, ts, val, q), state, now)
    return state, [(reg.sensors[s].id, t, side, a) for s, t, _, side, _, a in tr.rows()]


def test_a_renumbered_sensor_keeps_its_delay_running_across_the_change():
    a = _registry(DELAYED)
    b = _registry(RENUMBERED)
    assert a.sensor("slow-ch4").index != b.sensor("slow-ch4").index
    ta, tb = compile_table(a.sensors), compile_table(b.sensors)
    first = [("slow-ch4", 1000, 1.5), ("ch4-t1", 1000, 0.2), ("slow-ch4", 5000, 1.6)]
    second = [("slow-ch4", 9000, 1.7), ("slow-ch4", 11_000, 1.7)]  # 10 s after 1000
    # without a change
    s0 = CoreState.empty(len(a.sensors))
    s1, t1 = _judge(a, ta, s0, first, 6000)
    _, t2 = _judge(a, ta, s1, second, 12_000)
    assert t1 == [] and t2 == [("slow-ch4", 11_000, 0, 1)]
    # with the change between the two batches
    carried, changed = remap_core(s1, sensor_keys(a.sensors), ta.trend_of, b.sensors, tb)
    assert changed == set()
    _, t2b = _judge(b, tb, carried, second, 12_000)
    assert t2b == t2
    # a fresh state would have restarted the delay: no alarm yet
    _, fresh = _judge(b, tb, CoreState.empty(len(b.sensors)), second, 12_000)
    assert fresh == []


def test_a_sensor_whose_rules_changed_starts_afresh():
    a = _registry(DELAYED)
    b = _registry(DELAYED.replace("on_delay_s: 10", "on_delay_s: 20"))
    ta, tb = compile_table(a.sensors), compile_table(b.sensors)
    s1, _ = _judge(a, ta, CoreState.empty(len(a.sensors)), [("slow-ch4", 1000, 1.5)], 2000)
    carried, changed = remap_core(s1, sensor_keys(a.sensors), ta.trend_of, b.sensors, tb)
    assert changed == {"slow-ch4"}
    i = b.sensor("slow-ch4").index
    assert not carried.raw[i].any()
    assert carried.last_ts[i] == CoreState.empty(1).last_ts[0]
    # the unchanged sensor kept its last time
    j, k = a.sensor("ch4-t1").index, b.sensor("ch4-t1").index
    assert carried.last_ts[k] == s1.last_ts[j]


def test_a_held_check_is_a_change_of_rules_and_the_others_keep_their_digests():
    """`hold:` enters a sensor's signature only when set: the verified sensors of before keep
    the digests their saved states were written with (no state starts afresh on the upgrade)."""
    verified = DELAYED + (
        "                verify: {sensor: feed, expect_below: 0.5, within_s: 2}\n"
        "              - {id: feed, point: feed, kind: power_feed}\n"
    )
    a = _registry(verified)
    b = _registry(verified.replace("within_s: 2}", "within_s: 2, hold: false}"))
    c = _registry(verified.replace("within_s: 2}", "within_s: 2, hold: true}"))
    assert sensor_keys(a.sensors) == sensor_keys(b.sensors)
    assert "hold" not in repr(a.sensor("slow-ch4").verify)
    keys = zip(sensor_keys(a.sensors), sensor_keys(c.sensors), strict=True)
    assert [x[0] for x, y in keys if x != y] == ["slow-ch4"]


def test_a_held_actions_break_is_carried_over_a_renumbering():
    """A break of a held cut (the feed powered again, the methane's reading not in yet) moves
    with its sensor to its new row: the methane's next reading fails it after the change."""
    held = (
        "                verify: {sensor: feed, expect_below: 0.5, within_s: 2, hold: true}\n"
        "              - {id: feed, point: feed, kind: power_feed}\n"
    )
    a, b = _registry(DELAYED + held), _registry(RENUMBERED + held)
    ta, tb = compile_table(a.sensors), compile_table(b.sensors)
    rows = [("slow-ch4", 1000, 1.5), ("feed", 1000, 0.0), ("slow-ch4", 11_000, 1.5)]
    s1, _ = _judge(a, ta, CoreState.empty(len(a.sensors)), rows, 11_100)
    s2, _ = _judge(a, ta, s1, [("feed", 12_000, 1.0)], 12_100)
    carried, changed = remap_core(s2, sensor_keys(a.sensors), ta.trend_of, b.sensors, tb)
    assert changed == set()
    assert carried.broke[b.sensor("slow-ch4").index] == 12_000
    _, out = _judge(b, tb, carried, [("slow-ch4", 15_000, 1.5)], 15_100)
    assert ("slow-ch4", 12_000, ACTION, 1) in out


CONFIG = {
    "tenants": [
        {
            "id": "t",
            "subscriptions": [
                {"id": "s1", "channel": {"type": "webhook", "url": "http://x", "secret": "k1"}},
                {"id": "s2", "channel": {"type": "webhook", "url": "http://y", "secret": "k2"}},
            ],
        }
    ]
}


def test_secrets_are_hidden_and_kept_by_place_not_by_position():
    shown = mask(CONFIG)
    assert "k1" not in str(shown) and "k2" not in str(shown)
    assert shown["tenants"][0]["subscriptions"][0]["channel"]["secret"] == HIDDEN
    # the subscriptions come back in another order: each keeps its own secret
    back = {
        "tenants": [
            {**shown["tenants"][0], "subscriptions": shown["tenants"][0]["subscriptions"][::-1]}
        ]
    }
    kept = unmask(back, CONFIG)
    secrets = {s["id"]: s["channel"]["secret"] for s in kept["tenants"][0]["subscriptions"]}
    assert secrets == {"s1": "k1", "s2": "k2"}
    # a new one that says HIDDEN has nothing to keep
    new = {"tenants": [{"id": "t", "subscriptions": [{"id": "s3", "channel": {"secret": HIDDEN}}]}]}
    with pytest.raises(ConfigRefusedError) as info:
        unmask(new, CONFIG)
    assert info.value.errors[0]["loc"][-1] == "secret"


def test_a_carried_sensor_keeps_its_trend_readings():
    """The trend buffers (times as offsets from a base per trend row) follow their sensor to
    its new index and trend row."""
    import dataclasses

    from telemetry.config import LevelSpec, RateSpec
    from telemetry.registry import SensorInfo

    levels = (LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),)
    rate = RateSpec(per_min=1, window_s=60)

    def info(i: int, sid: str, trend: bool) -> SensorInfo:
        s = SensorInfo(i, sid, "t", "site", "dev", sid, "methane", "", "", "", "r", levels, 60.0)
        return dataclasses.replace(s, rate=rate) if trend else s

    old = [info(0, "a", True), info(1, "b", True)]
    new = [info(0, "x", False), info(1, "y", True), info(2, "b", True), info(3, "a", True)]
    ta, tb = compile_table(old), compile_table(new)
    ts = 1_700_000_000_000 + np.arange(10, dtype=np.int64) * 1000
    batch = Readings(np.array([0, 1] * 5, np.int32), ts, np.arange(10.0), np.zeros(10, np.uint8))
    s1, _, _ = evaluate(ta, batch, CoreState.empty(2))
    carried, _ = remap_core(s1, sensor_keys(old), ta.trend_of, new, tb)
    for sid, i in (("a", 0), ("b", 1)):
        j = next(n.index for n in new if n.id == sid)
        assert carried.trend_readings(int(tb.trend_of[j])) == s1.trend_readings(int(ta.trend_of[i]))
