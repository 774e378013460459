"""A real-time (SS) file's readings -> the hub's readings, one column set per hub device.

Pure. The sensor is the point map's (or ``{mine}-{point}``); the event time is the record's
data time; the quality comes from the status field (`Mines.quality`): a fault, calibration or
communication state is the reading's quality, never a value to judge. A value of -9999 (none)
is NaN with quality sensor fault unless the status says worse; out of range without a value
is a sensor fault too (the wire carries no out-of-range NaN). A value the status says good but
outside its point's measuring range (the JC definition's, 1e300 where it is 0-4 %) is out of
range: still judged against the levels, shown as doubtful.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway.minefiles.config import Mines
from telemetry.mt1201 import Reading
from telemetry.quality import Quality
from telemetry.registrytypes import DeviceInfo

__all__ = ["BATCH_READINGS", "Converted", "DeviceReadings", "Ranges", "convert"]

# the readings of one published batch at most: a big file goes in several (the codec takes at
# most 1,000,000 a batch; a broker and the hub's ingest take small messages better)
BATCH_READINGS = 10_000

_GOOD, _FAULT, _RANGE = int(Quality.GOOD), int(Quality.SENSOR_FAULT), int(Quality.OUT_OF_RANGE)


@dataclass(frozen=True, slots=True)
class DeviceReadings:
    """The readings of one hub device from one file, in event-time order."""

    device: DeviceInfo
    keys: tuple[str, ...]
    key: npt.NDArray[np.uint16]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def batches(self, size: int = BATCH_READINGS) -> list[DeviceReadings]:
        """These readings in pieces of at most `size` (in event-time order)."""
        if len(self) <= size:
            return [self]
        return [
            DeviceReadings(
                self.device,
                self.keys,
                self.key[i : i + size],
                self.ts[i : i + size],
                self.value[i : i + size],
                self.quality[i : i + size],
            )
            for i in range(0, len(self), size)
        ]


@dataclass(slots=True)
class Converted:
    devices: list[DeviceReadings] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # point codes without a hub sensor
    unknown_status: list[str] = field(default_factory=list)  # status texts taken as good
    no_value: int = 0  # readings of -9999

    @property
    def readings(self) -> int:
        return sum(len(d) for d in self.devices)


Ranges = Mapping[str, tuple[float | None, float | None]]  # point -> the JC's (low, high)


def _outside(value: float, span: tuple[float | None, float | None] | None) -> bool:
    if span is None:
        return False
    low, high = span
    if low is not None and high is not None and low >= high:
        return False  # a definition that says no range
    return (high is not None and value > high) or (low is not None and value < low)


def convert(
    mines: Mines,
    mine: str,
    readings: tuple[Reading, ...] | list[Reading],
    ranges: Ranges | None = None,
) -> Converted:
    """The readings of one file of `mine`; a good value outside its point's range (`ranges`, of
    the mine's point definitions) is out of range (judged all the same)."""
    out = Converted()
    ranges = ranges or {}
    rows: dict[tuple[str, str, str], list[tuple[int, str, float, int]]] = {}
    for r in readings:
        sensor = mines.sensor(mine, r.point)
        if sensor is None:
            if r.point not in out.unmapped:
                out.unmapped.append(r.point)
            continue
        quality = mines.quality.get(r.status.strip())
        if quality is None:
            if r.status not in out.unknown_status:
                out.unknown_status.append(r.status)
            quality = _GOOD
        value = float("nan") if r.value is None else r.value
        if quality == _GOOD and r.value is not None and _outside(value, ranges.get(r.point)):
            quality = _RANGE
        if r.value is None:
            out.no_value += 1
            if quality in (_GOOD, _RANGE):
                quality = _FAULT
        rows.setdefault((sensor.tenant, sensor.site, sensor.device), []).append(
            (r.data_ms, sensor.key, value, quality)
        )
    for where, found in rows.items():
        found.sort(key=lambda row: row[0])  # stable: a point's equal times keep file order
        keys = tuple(dict.fromkeys(row[1] for row in found))
        index = {k: i for i, k in enumerate(keys)}
        out.devices.append(
            DeviceReadings(
                device=mines.registry.devices[where],
                keys=keys,
                key=np.array([index[row[1]] for row in found], dtype=np.uint16),
                ts=np.array([row[0] for row in found], dtype=np.int64),
                value=np.array([row[2] for row in found], dtype=np.float64),
                quality=np.array([row[3] for row in found], dtype=np.uint8),
            )
        )
    return out
