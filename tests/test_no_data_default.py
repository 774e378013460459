"""A sensor with alarm levels goes dark with an alarm: without a no-data timeout of its own or its
rule's, it gets one from its device (five polls, at least a minute, twice the silence that
report-on-change allows); `no_data_s: 0` turns it off; sensors without levels get none."""

from __future__ import annotations

from typing import Any

import pytest

from alerts.evaluate import CoreState, Readings, evaluate
from alerts.table import NO_DATA, compile_table
from telemetry.config import HubConfig
from telemetry.registry import build_registry, parse_document

CONFIG = """
version: 1
device_profiles:
  - name: p
    points: [{{name: a, address: 0, dtype: uint16}}, {{name: b, address: 1, dtype: uint16}}]
rule_packs:
  - name: site
    rules:
      gas: {{levels: [{{name: alarm, tier: yellow, above: 25, recover: 23}}]}}
      slow: {{levels: [{{name: alarm, tier: yellow, above: 25, recover: 23}}], no_data_s: 600}}
      never: {{levels: [{{name: alarm, tier: yellow, above: 25, recover: 23}}], no_data_s: 0}}
tenants:
  - id: t
    sites:
      - id: s
        devices:
          - id: d
            profile: p
            {device}
            sensors:
              - {{id: x, point: a, kind: flammable_gas, rule: {rule}{own}}}
              - {{id: y, point: b, kind: power_feed}}
"""


def timeout(device: str = "", rule: str = "site.gas", own: str = "") -> Any:
    text = CONFIG.format(device=device, rule=rule, own=own)
    reg = build_registry(parse_document(text, HubConfig, "t.yaml"))
    return reg.sensor("x").no_data_s, reg.sensor("y").no_data_s


@pytest.mark.parametrize(
    ("device", "rule", "own", "expected"),
    [
        ("", "site.gas", "", 60.0),  # polled every second: a minute
        ("modbus: {poll_s: 30}", "site.gas", "", 150.0),  # five polls
        ("report: {on_change: true, max_silent_s: 300}", "site.gas", "", 600.0),
        ("", "site.slow", "", 600.0),  # the rule's
        ("", "site.slow", ", no_data_s: 5", 5.0),  # the sensor's own wins
        ("", "site.never", "", None),  # the rule says none
        ("", "site.gas", ", no_data_s: 0", None),  # the sensor says none
    ],
)
def test_the_no_data_timeout_of_a_sensor_with_levels(device, rule, own, expected):
    x, y = timeout(device, rule, own)
    assert x == expected
    assert y is None  # a sensor without levels: none


def test_a_sensor_with_the_default_raises_no_data_when_its_gateway_goes_quiet():
    reg = build_registry(
        parse_document(CONFIG.format(device="", rule="site.gas", own=""), HubConfig, "t.yaml")
    )
    table = compile_table(reg.sensors)
    x = reg.sensor("x").index
    state = CoreState.empty(len(reg.sensors))
    t0 = 1_800_000_000_000
    one = Readings([x], [t0], [1.0], [0])
    state, _, _ = evaluate(table, one, state, t0)
    state, tr, _ = evaluate(table, Readings([], [], [], []), state, t0 + 59_000)
    assert len(tr) == 0
    state, tr, _ = evaluate(table, Readings([], [], [], []), state, t0 + 61_000)
    assert [
        (int(s), int(side), int(a), int(ts))
        for s, side, a, ts in zip(tr.sensor, tr.side, tr.after, tr.ts, strict=True)
    ] == [(x, NO_DATA, 1, t0 + 60_000)]
