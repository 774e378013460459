"""A mine's point definitions (JC files): kept, and held against the hub's rules.

The mine's own system alarms at its own thresholds. Where a point's upper alarm threshold is
looser than the hub's first level for the sensor (a return-air methane alarm at 1.5 % where the
rule pack says 1.0 %), or the mine sets none, that setting is itself a hidden danger for the
supervisor: `check` finds it. JC records carry no power-cut threshold in the field list known
(docs/minefiles.md), so only the alarm threshold is compared.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from gateway.logtext import shown
from gateway.minefiles.config import Mines
from telemetry.mt1201 import PointDef

__all__ = ["GAS_KINDS", "Finding", "check", "load_points", "ranges_of", "save_points"]

FindingKind = Literal["looser", "no_alarm", "no_rule", "hub_looser", "unmapped", "ok"]
# the kinds whose sensor without a rule is a gap in the supervision (a wind speed's is not)
GAS_KINDS = frozenset({"methane", "co", "oxygen", "toxic_gas"})


@dataclass(frozen=True, slots=True)
class Finding:
    mine: str
    point: str
    type_name: str
    location: str
    sensor: str  # the hub's sensor id, "" when unmapped
    rule: str
    mine_alarm: float | None
    hub_alarm: float | None
    kind: FindingKind
    sensor_kind: str = ""

    @property
    def gap(self) -> bool:
        """A finding the supervisor must act on (`check-points` exits 1)."""
        return self.kind in ("looser", "no_alarm") or (
            self.kind == "no_rule" and self.sensor_kind in GAS_KINDS
        )

    def describe(self) -> str:
        # the mine's own text, escaped: a field cannot start a line of a log or a listing
        where = shown(f"mine {self.mine} point {self.point} ({self.type_name} {self.location})")
        if self.kind == "unmapped":
            return f"{where}: no hub sensor (point map or '{self.mine}-{self.point}')"
        if self.kind == "no_alarm":
            return (
                f"{where}: the mine sets no upper alarm threshold; the hub's rule "
                f"{self.rule} alarms at {self.hub_alarm:g}"
            )
        if self.kind == "no_rule":
            mine = "none" if self.mine_alarm is None else f"{self.mine_alarm:g}"
            return (
                f"{where}: the hub's sensor {self.sensor} ({self.sensor_kind}) has no rule nor "
                f"upper level: the hub raises nothing for it (the mine alarms at {mine})"
            )
        if self.kind == "hub_looser":
            return (
                f"{where}: the hub's first level {self.hub_alarm:g} ({self.rule}) is looser than "
                f"the mine's own alarm at {self.mine_alarm:g}: the mine alarms first"
            )
        if self.kind == "looser":
            return (
                f"{where}: the mine alarms at {self.mine_alarm:g}, looser than the hub's rule "
                f"{self.rule} at {self.hub_alarm:g} (sensor {self.sensor})"
            )
        return f"{where}: the mine alarms at {self.mine_alarm}, the hub at {self.hub_alarm}"


def check(mines: Mines, mine: str, points: list[PointDef] | tuple[PointDef, ...]) -> list[Finding]:
    """One finding per point of the file: looser, no alarm, unmapped or ok."""
    out = []
    for p in points:
        sensor = mines.sensor(mine, p.point)
        if sensor is None:
            out.append(
                Finding(
                    mine, p.point, p.type_name, p.location, "", "", p.alarm_high, None, "unmapped"
                )
            )
            continue
        uppers = [lv.above for lv in sensor.levels if lv.above is not None]
        hub = min(uppers) if uppers else None
        kind: FindingKind = "ok"
        if hub is None:
            kind = "no_rule"
        elif p.alarm_high is None:
            kind = "no_alarm"
        elif p.alarm_high > hub + 1e-9:
            kind = "looser"
        elif p.alarm_high < hub - 1e-9:
            kind = "hub_looser"
        out.append(
            Finding(
                mine,
                p.point,
                p.type_name,
                p.location,
                sensor.id,
                sensor.rule,
                p.alarm_high,
                hub,
                kind,
                sensor.kind,
            )
        )
    return out


def ranges_of(points: Sequence[PointDef]) -> dict[str, tuple[float | None, float | None]]:
    """Point -> its measuring range (low, high) as defined."""
    return {p.point: (p.range_low, p.range_high) for p in points}


def save_points(folder: Path, mine: str, source: str, points: tuple[PointDef, ...]) -> Path:
    """Keep a mine's latest definitions as ``{folder}/{mine}.json`` (written whole, then put in
    place: a reader never sees half)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{mine}.json"
    tmp = folder / f".{mine}.json.tmp"
    doc = {"mine": mine, "source": source, "points": [asdict(p) for p in points]}
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_points(folder: Path) -> dict[str, tuple[str, list[PointDef]]]:
    """mine -> (the JC file they came from, its definitions), of every mine kept."""
    out = {}
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        out[str(doc["mine"])] = (str(doc["source"]), [PointDef(**p) for p in doc["points"]])
    return out
