"""docs/rules.md's shorter bypass limit: the site's own pack and the sensor naming it, as the
page shows them, load with the shipped packs from a profiles folder of the site's own, and a
bypass under the commissioning copy is an alarm 40 s after it began, under the 2 h copy not
before 2 h (h236's commissioning: no sensor setting shortens the shipped 8 h)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from alerts.bypasses import bypass_sensor
from alerts.evaluate import CoreState, evaluate
from alerts.state import Readings
from alerts.table import ABOVE, compile_table
from hazardhub.settings import SHIPPED_PROFILES, load

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_800_000_000_000


def blocks() -> tuple[str, str, str]:
    """The pack's file name, the pack and the sensor, as the page gives them."""
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    section = text[text.index("**A shorter allowed time.**") : text.index("The older rule")]
    found = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(found) == 2, found
    pack, sensor = found
    name = re.match(r"# profiles/rules/(\S+\.yaml)\n", pack)
    assert name is not None, pack
    return name.group(1), pack, sensor


def config(sensor: str) -> str:
    """A site of two loops: the page's sensor (the 2 h rule) and one under the commissioning
    rule, its copy."""
    second = sensor.replace("sis-inlet-bypass", "sis-outlet-bypass").replace(
        "interlock-bypass-2h", "interlock-bypass-commissioning"
    )
    devices = "\n".join(
        f"""          - id: {d}
            profile: interlock-block
            modbus: {{host: 127.0.0.1, port: 1502, unit: {u}}}
            sensors:
{"".join("              " + line + chr(10) for line in s.strip().splitlines())}"""
        for u, d, s in ((1, "sis-inlet", sensor), (2, "sis-outlet", second))
    )
    return f"""version: 1
tenants:
  - id: acme
    sites:
      - id: tank-farm
        devices:
{devices}"""


def test_the_docs_copy_of_the_bypass_rule_shortens_its_allowed_time(tmp_path: Path) -> None:
    file, pack, sensor = blocks()
    own = tmp_path / "profiles"
    (own / "rules").mkdir(parents=True)
    (own / "devices").mkdir()
    (own / "rules" / file).write_text(pack, encoding="utf-8")
    cfg = tmp_path / "site.yaml"
    cfg.write_text(config(sensor), encoding="utf-8")
    registry = load(cfg, [SHIPPED_PROFILES, own]).registry()
    inlet, outlet = registry.sensor("sis-inlet-bypass"), registry.sensor("sis-outlet-bypass")
    assert inlet is not None and outlet is not None
    assert (inlet.rule, outlet.rule) == (
        "acme-sis.interlock-bypass-2h",
        "acme-sis.interlock-bypass-commissioning",
    )
    assert bypass_sensor(inlet) and bypass_sensor(outlet)  # approvals may name them
    table = compile_table(registry.sensors)
    state = CoreState.empty(len(registry.sensors))
    raised: list[tuple[int, int, int]] = []
    for k in range(0, 61, 5):  # both flags 1 from T0, a reading each 5 s for a minute
        ts = T0 + k * 1000
        readings = Readings(
            np.array([inlet.index, outlet.index], np.int32),
            np.array([ts, ts], np.int64),
            np.ones(2),
            np.zeros(2, np.uint8),
        )
        state, tr, _ = evaluate(table, readings, state, ts)
        raised += [
            (int(s), int(t) - T0, int(a))
            for s, t, side, a in zip(tr.sensor, tr.ts, tr.side, tr.after, strict=True)
            if side == ABOVE
        ]
    assert sorted(raised) == sorted(
        [
            (inlet.index, 0, 1),  # bypassed, told at once
            (outlet.index, 0, 1),
            (outlet.index, 40_000, 2),  # bypassed_too_long, 40 s on
        ]
    )
