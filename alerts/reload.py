"""Carry the alert state over a configuration change (a hot reload).

A new configuration renumbers the sensors. The state of a sensor that is in both configurations
with the same rules (levels, delays, timeouts, rate of rise, early warning, action check, voting
members) moves to its new row, so its delays, rate windows and no-data clocks go on as if nothing
happened. A sensor whose rules changed starts afresh, as does a new one: its open alarms are
cleared by the caller (`AlarmBook.retire`) and its next readings judge it again. Vehicles keep
their driving-time and overspeed state by vehicle id.

Pure: no clocks, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.state import CoreState
from alerts.table import RuleTable
from alerts.vehicles.alarms import FleetAlarms
from alerts.vehicles.state import FleetState
from alerts.vehicles.table import FleetTable
from alerts.vehicles.terminal import TerminalAlarms
from telemetry.registry import SensorInfo

__all__ = ["core_signature", "remap_core", "remap_fleet", "remap_terminal"]

# CoreState arrays keyed by trend row (RuleTable.trend_of), not by sensor
_TREND_FIELDS = frozenset({"hist_ts", "hist_v", "hist_n"})


def core_signature(info: SensorInfo, sensors: Sequence[SensorInfo]) -> tuple[Any, ...]:
    """What the core judges a sensor by; equal signatures mean its state stays meaningful."""
    return (
        info.rule,
        info.levels,
        info.no_data_s,
        info.verify,
        tuple(sensors[m].id for m in info.members),
        info.vote_level,
        info.rate,
        info.early_warning,
    )


def remap_core(
    state: CoreState,
    old: Sequence[SensorInfo],
    old_table: RuleTable,
    new: Sequence[SensorInfo],
    new_table: RuleTable,
) -> tuple[CoreState, set[str]]:
    """The state for `new_table`, rows carried over by sensor id, and the ids of the sensors in
    both whose rules changed (their rows start afresh)."""
    by_id = {s.id: s for s in old}
    src = np.full(len(new), -1, dtype=np.int64)
    changed: set[str] = set()
    for info in new:
        before = by_id.get(info.id)
        if before is None:
            continue
        if core_signature(before, old) != core_signature(info, new):
            changed.add(info.id)
            continue
        src[info.index] = before.index
    fresh = CoreState.empty(len(new), new_table.trends, new_table.trend_depth)
    keep = np.flatnonzero(src >= 0)
    take = src[keep]
    # trend rows: the new row of a carried sensor takes its old row (both have one: same rules)
    t_new = new_table.trend_of[keep]
    t_old = old_table.trend_of[take] if old_table.trend_of.shape[0] else np.zeros(0, np.int64)
    has_trend = (t_new >= 0) & (t_old >= 0) if t_old.shape[0] else np.zeros(0, np.bool_)
    old_trends = state.hist_n.shape[0]
    values: dict[str, npt.NDArray[Any]] = {}
    for f in dataclasses.fields(CoreState):
        target = getattr(fresh, f.name).copy()
        source = getattr(state, f.name)
        if f.name in _TREND_FIELDS:
            if old_trends and has_trend.any() and source.shape[1:] == target.shape[1:]:
                target[t_new[has_trend]] = source[t_old[has_trend]]
        elif source.shape[0] == len(old) and source.shape[1:] == target.shape[1:]:
            target[keep] = source[take]
        values[f.name] = target
    return CoreState(**values), changed


def remap_fleet(old: FleetAlarms, new_table: FleetTable) -> FleetAlarms:
    """The fleet analytics for `new_table`, each vehicle's state carried over by its id. When
    the geofences changed, whether a vehicle is on its route or in a forbidden area is found
    again from its next position (the caller restores the open corridor and area alarms)."""
    fresh = FleetAlarms(new_table)
    slot_of = {vid: s for s, vid in enumerate(old.table.ids)}
    pairs = [(s, slot_of[vid]) for s, vid in enumerate(new_table.ids) if vid in slot_of]
    if not pairs:
        return fresh
    dst = np.array([p[0] for p in pairs], dtype=np.intp)
    src = np.array([p[1] for p in pairs], dtype=np.intp)
    same_fences = (old.table.corridors, old.table.forbidden) == (
        new_table.corridors,
        new_table.forbidden,
    ) and bool(np.array_equal(old.table.route[src], new_table.route[dst]))
    for f in dataclasses.fields(FleetState):
        if not same_fences and f.name in ("in_route", "forbidden"):
            continue
        target = getattr(fresh.state, f.name)
        target[dst] = getattr(old.state, f.name)[src]
    return fresh


def remap_terminal(
    old: TerminalAlarms, old_sensors: Sequence[SensorInfo], new_index: dict[str, int]
) -> TerminalAlarms:
    """The terminals' last alarm bits and newest judged positions, by vehicle."""
    fresh = TerminalAlarms()
    for i, flags in old.flags.items():
        j = new_index.get(old_sensors[i].id) if 0 <= i < len(old_sensors) else None
        if j is not None:
            fresh.flags[j] = flags
    for i, ts in old.last_ts.items():
        j = new_index.get(old_sensors[i].id) if 0 <= i < len(old_sensors) else None
        if j is not None:
            fresh.last_ts[j] = ts
    return fresh
