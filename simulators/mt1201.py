"""A coal mine's safety-monitoring system as the supervision centre sees it over the network:
MT/T 1201 files (point definitions once, real-time values each period) written into a folder,
as its FTP upload would put them (docs/minefiles.md).

Each file is written under a hidden name and renamed into place, as an FTP client that uploads
to a temporary name does; `write_partial` leaves one without its end marker, as an upload cut
off half-way would.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from simulators.signals import Constant, Noisy, Piecewise, Signal
from telemetry.config import SensorKind
from telemetry.mt1201 import Header, PointDef, Reading, file_name
from telemetry.mt1201text import Encoding
from telemetry.mt1201write import write

__all__ = ["KINDS", "MineSimulator", "SimPoint", "point_of_kind"]


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One point of the mine's system: its definition and the signal its value follows.
    `status_at` gives the status field at a time (default "0", normal); a NaN value is
    written as -9999 (no value)."""

    code: str
    type_name: str
    unit: str
    location: str
    signal: Signal = field(default_factory=lambda: Constant(0.3))
    alarm_high: float | None = None
    range_high: float = 4.0
    type_code: str = "0001"
    substation: str = "F01"
    statuses: tuple[tuple[float, float, str], ...] = ()  # (from_s, to_s, status)

    def status_at(self, t_s: float) -> str:
        for start, end, status in self.statuses:
            if start <= t_s < end:
                return status
        return "0"


@dataclass(slots=True)
class MineSimulator:
    """Writes a mine's files into `folder` in `encoding` (gb18030: as a KJ system writing GBK
    does); times are the scenario's (`t_s` from `start_ms`)."""

    folder: Path
    mine_code: str
    points: tuple[SimPoint, ...]
    start_ms: int
    mine_name: str = "模拟煤矿"
    system_id: str = "AQ"
    encoding: Encoding = "utf-8"
    written: list[Path] = field(default_factory=list)

    def _header(self, at_ms: int) -> Header:
        return Header(self.mine_code, self.mine_name, self.system_id, "安全监控系统", at_ms)

    def _put(self, kind: str, at_ms: int, data: bytes) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / file_name(self.mine_code, kind, at_ms)
        tmp = self.folder / f".{path.name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.written.append(path)
        return path

    def definitions(self, t_s: float) -> Path:
        """The JC file: every point's definition."""
        at = self.start_ms + int(t_s * 1000)
        records = [
            PointDef(
                p.code,
                p.type_code,
                p.type_name,
                p.substation,
                p.location,
                p.unit,
                p.range_high,
                0.0,
                p.alarm_high,
                None,
                "",
                self.start_ms,
            )
            for p in self.points
        ]
        return self._put("JC", at, write(self._header(at), records, self.encoding))

    def _readings(self, t_s: float) -> bytes:
        at = self.start_ms + int(t_s) * 1000  # whole seconds: the format's resolution
        records = []
        for p in self.points:
            value = round(p.signal.value_at(t_s), 2)
            records.append(
                Reading(
                    p.code,
                    p.type_code,
                    p.type_name,
                    p.substation,
                    None if math.isnan(value) else value,
                    p.unit,
                    p.status_at(t_s),
                    at,
                )
            )
        return write(self._header(at), records, self.encoding)

    def real_time(self, t_s: float) -> Path:
        """The SS file of every point's value at `t_s`."""
        return self._put("SS", self.start_ms + int(t_s) * 1000, self._readings(t_s))

    def write_partial(self, t_s: float) -> Path:
        """An SS file cut off before its end marker (an upload that broke)."""
        data = self._readings(t_s)
        return self._put("SS", self.start_ms + int(t_s) * 1000, data[: data.rindex(b"||")])


# what a point of each hub sensor kind reads when nothing happens (DOMAIN 1.5), its type name,
# unit and span as a KJ system names them; the type names are those draft-config reads back as
# the kind (gateway/minefiles/proposal.py). A kind not here (flammable_gas, interlock, other: a
# KJ system has no one name for it) is written with the kind as its type name.
KINDS: dict[SensorKind, tuple[str, str, float, float]] = {
    "methane": ("甲烷", "%CH4", 0.3, 4.0),
    "co": ("一氧化碳", "ppm", 5.0, 1000.0),
    "oxygen": ("氧气", "%", 20.9, 25.0),
    "toxic_gas": ("硫化氢", "ppm", 0.5, 100.0),
    "wind_speed": ("风速", "m/s", 2.5, 15.0),
    "temperature": ("温度", "℃", 22.0, 40.0),
    "pressure": ("负压", "Pa", 1500.0, 5000.0),
    "level": ("水位", "m", 1.0, 10.0),
    "power_feed": ("馈电", "", 1.0, 1.0),
}
_BY_KIND: dict[str, tuple[str, str, float, float]] = {str(k): v for k, v in KINDS.items()}


def point_of_kind(
    code: str, kind: str, location: str, *, alarm_high: float | None, rise_at_s: float | None
) -> SimPoint:
    """A point of a hub sensor kind with a quiet signal (small noise); with `rise_at_s`, a
    methane point rises from there to 1.6 % in 30 s, holds 60 s and falls back in 30 s."""
    name, unit, base, span = _BY_KIND.get(kind, (kind, "", 1.0, 100.0))
    signal: Signal = Noisy(Constant(base), base * 0.05, seed=sum(map(ord, code)))
    if rise_at_s is not None:
        t = rise_at_s
        signal = Piecewise(((t, base), (t + 30, 1.6), (t + 90, 1.6), (t + 120, base)))
    return SimPoint(code, name, unit, location, signal, alarm_high, span)
