"""The newest event time sent per hub sensor, to say when a file's readings are older.

A mine's system that re-uploads its backlog after a network cut sends files older than ones
already taken. The hub judges a reading older than its sensor's newest only within its
`lateness_s` (docs/rules.md, "Late readings"); beyond it the reading is stored and counted late,
never alarmed: the gateway says so per file, where the operator looks for the mine's files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.minefiles.convert import DeviceReadings

__all__ = ["Late", "Newest"]

_NONE = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class Late:
    readings: int  # older than their sensor's newest sent
    points: int  # of how many sensors
    most_ms: int  # the oldest of them, how much older


class Newest:
    """Sensor (tenant, site, device, key) -> the newest event time (epoch ms) sent."""

    def __init__(self) -> None:
        self._ms: dict[tuple[str, str, str, str], int] = {}

    def update(self, devices: list[DeviceReadings], until_ms: int | None = None) -> Late:
        """Count the readings of `devices` older than their sensor's newest, then keep the
        newest of each, of those at or before `until_ms` (the hub refuses later ones: they move
        nothing there)."""
        readings = points = most = 0
        for d in devices:
            where = (d.device.tenant, d.device.site, d.device.spec.id)
            names = [(*where, k) for k in d.keys]
            before = np.array([self._ms.get(n, _NONE) for n in names], dtype=np.int64)
            prior = before[d.key]
            late = d.ts < prior
            if late.any():
                readings += int(late.sum())
                points += int(np.unique(d.key[late]).shape[0])
                most = max(most, int((prior[late] - d.ts[late]).max()))
            after = before.copy()
            kept = slice(None) if until_ms is None else d.ts <= until_ms
            np.maximum.at(after, d.key[kept].astype(np.intp), d.ts[kept])
            for n, ms in zip(names, after.tolist(), strict=True):
                if ms != _NONE:
                    self._ms[n] = ms
        return Late(readings, points, most)
