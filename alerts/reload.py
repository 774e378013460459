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
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.state import NO_TS, CoreState
from alerts.table import RuleTable
from alerts.vehicles.alarms import FleetAlarms
from alerts.vehicles.state import FleetState
from alerts.vehicles.table import FleetTable
from alerts.vehicles.terminal import TerminalAlarms
from telemetry.registry import SensorInfo

__all__ = [
    "SensorKey",
    "TerminalById",
    "core_signature",
    "fence_key",
    "remap_core",
    "remap_fleet",
    "remap_fleet_state",
    "remap_terminal",
    "sensor_keys",
    "terminal_by_id",
]

# CoreState arrays keyed by trend row (RuleTable.trend_of), not by sensor
_TREND_FIELDS = frozenset({"hist_ts", "hist_v", "hist_n", "hist_head", "hist_base"})


SensorKey = tuple[str, str]  # (sensor id, digest of what the core judges it by)


# a terminal state by speed sensor id: alarm bits, newest positions, late positions judged,
# their red bits and the holes in the live track (`alerts.vehicles.terminal.TerminalAlarms`)
TerminalById = tuple[
    dict[str, int], dict[str, int], dict[str, int], dict[str, int], dict[str, list[list[int]]]
]


def core_signature(info: SensorInfo, sensors: Sequence[SensorInfo]) -> tuple[Any, ...]:
    """What the core judges a sensor by; equal signatures mean its state stays meaningful."""
    base: tuple[Any, ...] = (
        info.rule,
        info.levels,
        info.no_data_s,
        info.verify,
        tuple(sensors[m].id for m in info.members),
        info.vote_level,
        info.rate,
        info.early_warning,
    )
    # added only when set, so that the sensors without them keep the digests saved before them
    if info.verify is not None and info.verify.also:
        base = (*base, info.verify.also)
    if info.verify is not None and info.verify.hold:
        base = (*base, "hold")
    if info.verify is not None and info.verify.on_fault:
        base = (*base, "on_fault")
    if info.count_failed:
        base = (*base, "count_failed")
    if info.maintenance is not None:
        base = (*base, ("maintenance", info.maintenance))
    # (not the calibration interval: its state, the last calibration, holds under any interval)
    return base if info.frozen is None else (*base, info.frozen)


def sensor_keys(sensors: Sequence[SensorInfo]) -> list[SensorKey]:
    """Each sensor's id and a digest of its signature (the models' reprs are deterministic), so
    that a state saved by another process can be matched (`alerts.snapshot`)."""
    return [
        (s.id, hashlib.sha256(repr(core_signature(s, sensors)).encode()).hexdigest()[:32])
        for s in sensors
    ]


def remap_core(
    state: CoreState,
    old: Sequence[SensorKey],
    old_trend_of: npt.NDArray[np.int64],
    new: Sequence[SensorInfo],
    new_table: RuleTable,
) -> tuple[CoreState, set[str]]:
    """The state for `new_table`, rows carried over by sensor id, and the ids of the sensors in
    both whose rules changed (their rows start afresh). `old` and `old_trend_of` describe the
    state's rows (`sensor_keys`, `RuleTable.trend_of`)."""
    by_id = {sid: (i, sig) for i, (sid, sig) in enumerate(old)}
    src = np.full(len(new), -1, dtype=np.int64)
    changed: set[str] = set()
    for info, (sid, sig) in zip(new, sensor_keys(new), strict=True):
        before = by_id.get(sid)
        if before is None:
            continue
        if before[1] != sig:
            changed.add(sid)
            continue
        src[info.index] = before[0]
    # with the lateness window's arrays of the state's depth, so that they are carried too (a
    # window of another depth starts afresh at the next batch, `evaluate`)
    late_depth = state.ring_ts.shape[1] if state.ring_ts.shape[0] else 0
    fresh = CoreState.empty(len(new), new_table.trends, new_table.trend_keep, late_depth)
    keep = np.flatnonzero(src >= 0)
    take = src[keep]
    # trend rows: the new row of a carried sensor takes its old row (both have one: same rules)
    t_new = new_table.trend_of[keep]
    t_old = old_trend_of[take] if old_trend_of.shape[0] else np.full(take.shape, -1, np.int64)
    has_trend = (t_new >= 0) & (t_old >= 0)
    old_trends = state.hist_n.shape[0]
    values: dict[str, npt.NDArray[Any]] = {}
    for f in dataclasses.fields(CoreState):
        target = getattr(fresh, f.name).copy()
        source = getattr(state, f.name)
        if f.name in _TREND_FIELDS:
            ok = has_trend & (t_old < old_trends)
            if ok.any() and source.shape == (old_trends, *target.shape[1:]):
                target[t_new[ok]] = source[t_old[ok]]
        elif (
            source.shape[0] == len(old)
            and target.shape[0] == len(new)
            and source.shape[1:] == target.shape[1:]
        ):
            target[keep] = source[take]
        values[f.name] = target
    if len(old) and state.broke.shape[0] == len(old):  # held actions' breaks, when any
        broke = np.full(len(new), NO_TS, dtype=np.int64)
        broke[keep] = state.broke[take]
        values["broke"] = broke
    return CoreState(**values), changed


def fence_key(table: FleetTable) -> str:
    """A digest of the geofences a fleet table was compiled from."""
    return hashlib.sha256(repr(table.settings.geofences).encode()).hexdigest()[:32]


def remap_fleet_state(
    state: FleetState,
    ids: Sequence[str],
    route: npt.NDArray[np.int32],
    fences: str,
    new_table: FleetTable,
) -> FleetAlarms:
    """Fleet analytics for `new_table`, each vehicle's state carried over by its id from a state
    whose slots are `ids` (with their corridor numbers `route`, compiled from geofences of
    digest `fences`). When the geofences changed, whether a vehicle is on its route or in a
    forbidden area is found again from its next position (the caller restores the open
    corridor and area alarms)."""
    fresh = FleetAlarms(new_table)
    slot_of = {vid: s for s, vid in enumerate(ids)}
    pairs = [(s, slot_of[vid]) for s, vid in enumerate(new_table.ids) if vid in slot_of]
    if not pairs:
        return fresh
    dst = np.array([p[0] for p in pairs], dtype=np.intp)
    src = np.array([p[1] for p in pairs], dtype=np.intp)
    same_fences = fences == fence_key(new_table) and bool(
        np.array_equal(route[src], new_table.route[dst])
    )
    for f in dataclasses.fields(FleetState):
        if not same_fences and f.name in ("in_route", "forbidden"):
            continue
        target = getattr(fresh.state, f.name)
        source = getattr(state, f.name)
        if source.shape[0] == len(ids):
            target[dst] = source[src]
    return fresh


def remap_fleet(old: FleetAlarms, new_table: FleetTable) -> FleetAlarms:
    fresh = remap_fleet_state(
        old.state, old.table.ids, old.table.route, fence_key(old.table), new_table
    )
    fresh.names = old.names  # the drivers' names go on
    return fresh


def remap_terminal(by_id: TerminalById, new_index: Mapping[str, int]) -> TerminalAlarms:
    """The terminals' last alarm bits, newest judged positions and late episodes (blind areas
    judged after a newer position), by vehicle (speed sensor id): `terminal_by_id`'s."""
    flags, last_ts, late_ts, late_flags, holes = by_id
    fresh = TerminalAlarms()
    for sid, value in flags.items():
        if sid in new_index:
            fresh.flags[new_index[sid]] = value
    for sid, ts in last_ts.items():
        if sid in new_index:
            fresh.set_last_ts(new_index[sid], ts)
    for sid, ts in late_ts.items():
        if sid in new_index:
            fresh.late_ts[new_index[sid]] = ts
    for sid, value in late_flags.items():
        if sid in new_index:
            fresh.late_flags[new_index[sid]] = value
    for sid, spans in holes.items():
        if sid in new_index:
            fresh.holes[new_index[sid]] = tuple((int(a), int(b)) for a, b in spans)
    return fresh


def terminal_by_id(terminal: TerminalAlarms, sensors: Sequence[SensorInfo]) -> TerminalById:
    """A terminal state keyed by speed sensor id instead of registry index."""
    n = len(sensors)

    def by_id(values: Mapping[int, int]) -> dict[str, int]:
        return {sensors[i].id: v for i, v in values.items() if 0 <= i < n}

    return (
        by_id(terminal.flags),
        by_id(terminal.last_ts),
        by_id(terminal.late_ts),
        by_id(terminal.late_flags),
        {sensors[i].id: [[a, b] for a, b in h] for i, h in terminal.holes.items() if 0 <= i < n},
    )
