"""Enterprise KPIs of the national assessment (联网联控考核) over a period, from stored positions.

* online rate (上线率): vehicles with at least one position in the period / vehicles in the table;
* track completeness (轨迹完整率): complete km / total km, where the km between consecutive fixes
  are complete when the fixes are at most `track_gap_s` apart;
* drift rate (漂移率): intervals between consecutive fixes whose implied speed is above
  `drift_kmh` / all intervals. Drift intervals count in neither km total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alerts.vehicles.evaluate import order_positions
from alerts.vehicles.geo import step_m
from alerts.vehicles.state import FleetState, Positions
from alerts.vehicles.table import FleetTable

__all__ = ["FleetKpis", "fleet_kpis"]


@dataclass(frozen=True, slots=True)
class FleetKpis:
    vehicles: int
    online: int
    positions: int
    intervals: int
    drift: int
    total_km: float
    complete_km: float

    @property
    def online_rate(self) -> float:
        return self.online / self.vehicles if self.vehicles else 0.0

    @property
    def completeness(self) -> float:
        return self.complete_km / self.total_km if self.total_km > 0 else 1.0

    @property
    def drift_rate(self) -> float:
        return self.drift / self.intervals if self.intervals else 0.0


def fleet_kpis(table: FleetTable, batch: Positions, start_ms: int, end_ms: int) -> FleetKpis:
    """KPIs over positions with start <= ts < end (of one period; any order, duplicates once)."""
    ts_all = np.asarray(batch.ts, dtype=np.int64)
    period = (ts_all >= start_ms) & (ts_all < end_ms)
    rows, slots = order_positions(table, FleetState.new(len(table)), _Subset(batch, period))
    sub = np.flatnonzero(period)[rows]
    t, lat, lon = ts_all[sub], np.asarray(batch.lat)[sub], np.asarray(batch.lon)[sub]
    same = slots[1:] == slots[:-1]
    dt = (t[1:] - t[:-1])[same]
    km = step_m(lat[:-1], lon[:-1], lat[1:], lon[1:])[same] / 1000.0
    drift = km * 3_600_000.0 / dt > table.drift_kmh
    clean = ~drift
    return FleetKpis(
        vehicles=len(table),
        online=int(np.unique(slots).size),
        positions=int(sub.size),
        intervals=int(dt.size),
        drift=int(drift.sum()),
        total_km=float(km[clean].sum()),
        complete_km=float(km[clean & (dt <= table.track_gap_ms)].sum()),
    )


class _Subset:
    def __init__(self, batch: Positions, mask: np.ndarray[tuple[int], np.dtype[np.bool_]]) -> None:
        self.vehicle = np.asarray(batch.vehicle)[mask]
        self.ts = np.asarray(batch.ts, dtype=np.int64)[mask]
        self.lat = np.asarray(batch.lat)[mask]
        self.lon = np.asarray(batch.lon)[mask]
        self.speed_kmh = np.asarray(batch.speed_kmh)[mask]
