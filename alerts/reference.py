"""Plain-Python twin of `alerts.evaluate`, one reading at a time: the specification the vectorized
core is property-tested against. Not for production use."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from alerts.table import SLOTS, RuleTable
from telemetry.quality import Quality

__all__ = ["reference_evaluate"]

Row = tuple[int, int, float, int, int, int]  # sensor, ts, value, side, before, after


def reference_evaluate(
    table: RuleTable,
    active: list[list[bool]],
    level: list[list[int]],
    last_ts: list[int],
    sensor: npt.NDArray[np.int32],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> list[Row]:
    """Mutates active/level/last_ts in place; returns the transitions in (sensor, ts) order."""
    rows = []
    for i in range(len(ts)):
        s, t, v, q = int(sensor[i]), int(ts[i]), float(value[i]), int(quality[i])
        if q != Quality.GOOD or not math.isfinite(v) or not table.has_rules[s]:
            continue
        if t <= last_ts[s]:
            continue
        rows.append((s, t, i, v))
    # judge in (sensor, ts) order; of equal timestamps the last in input order wins
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    dedup: list[tuple[int, int, float]] = []
    for k, (s, t, _, v) in enumerate(rows):
        if k + 1 < len(rows) and rows[k + 1][0] == s and rows[k + 1][1] == t:
            continue
        dedup.append((s, t, v))
    out: list[Row] = []
    for s, t, v in dedup:
        for j in range(2 * SLOTS):
            thr = float(table.threshold[s, j])
            rec = float(table.recover[s, j])
            if math.isnan(thr):
                continue
            if j < SLOTS:
                if v >= thr:
                    active[s][j] = True
                elif v < rec:
                    active[s][j] = False
            elif v <= thr:
                active[s][j] = True
            elif v > rec:
                active[s][j] = False
        for side in (0, 1):
            slots = active[s][side * SLOTS : (side + 1) * SLOTS]
            new_level = max((k + 1 for k, on in enumerate(slots) if on), default=0)
            if new_level != level[s][side]:
                out.append((s, t, v, side, level[s][side], new_level))
                level[s][side] = new_level
        last_ts[s] = t
    return out
