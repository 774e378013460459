"""The analytics state kept across a hub restart: running delays, rate windows and no-data clocks
of the sensors; the driving time, rests, overspeed episodes and geofence states of the vehicles;
the terminals' last alarm bits.

Without it a restart forgets, for example, that a coach has driven 3 h 50 min: its fatigue alarm
would come 4 h after the restart instead of 10 min after it. The hub saves the state every
`every_s` (30 s by default) and when it stops, into one file (`analytics-state.npz` under the
data folder; written aside, synced and renamed, so a crash leaves the old file or the new one).

At start the saved state is matched to the running configuration by sensor and vehicle id (a
sensor whose rules changed starts afresh, see `alerts.reload`) and then reconciled with the state
database, which stays the authority on alarms: a side whose alarm is not active there is not
active in the state either (its delay goes on from where it was, so it is raised again if it is
still due), and an active alarm is active in the state. A side whose alarm was cleared after the
state was saved (and none is active) ended its condition since: its delay or episode starts
afresh (`afresh`), else a new excess would continue the one that ended. After a crash the
state is up to `every_s` old: the readings judged in between count for the alarms they made
(in the database) but not for the running delays and sums, which lose at most that much.

Files are numpy archives without pickles; a file that cannot be read is logged and ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.alarmrestore import Ended
from alerts.reload import (
    SensorKey,
    TerminalById,
    fence_key,
    remap_core,
    remap_fleet_state,
    remap_terminal,
    sensor_keys,
)
from alerts.state import NO_TS, RUN_START0, CoreState
from alerts.table import (
    ABOVE,
    BELOW,
    FROZEN,
    MAINTENANCE,
    RUN_CAP,
    SLOTS,
    RuleTable,
    kind_name,
)
from alerts.vehicles.alarms import DriverNames, FleetAlarms
from alerts.vehicles.state import FleetState
from alerts.vehicles.table import FleetTable
from alerts.vehicles.terminal import TerminalAlarms
from telemetry.registry import SensorInfo

__all__ = ["Saved", "afresh", "driver_codes", "load", "resume", "save"]

log = logging.getLogger(__name__)
VERSION = 1


@dataclass(frozen=True, slots=True)
class Saved:
    """A state read back: the core's rows keyed by `sensors`, the fleet's slots by `vehicles`."""

    saved_ms: int
    sensors: list[SensorKey]
    trend_of: npt.NDArray[np.int64]
    core: CoreState
    vehicles: list[str]
    route: npt.NDArray[np.int32]
    fences: str
    fleet: FleetState
    terminal_flags: dict[str, int]
    terminal_last_ts: dict[str, int]
    terminal_late_ts: dict[str, int]  # blind areas judged after a newer position (none before)
    terminal_late_flags: dict[str, int]
    terminal_holes: dict[str, list[list[int]]]
    driver_names: dict[int, str]  # of the drivers the fleet's state holds


def save(
    path: Path,
    *,
    sensors: Sequence[SensorInfo],
    table: RuleTable,
    core: CoreState,
    fleet: FleetAlarms,
    terminal: TerminalById,
    now_ms: int,
) -> int:
    """Write the state; returns the bytes written."""
    meta = {
        "version": VERSION,
        "saved_ms": now_ms,
        "sensors": sensor_keys(sensors),
        "vehicles": list(fleet.table.ids),
        "fences": fence_key(fleet.table),
        "terminal_flags": terminal[0],
        "terminal_last_ts": terminal[1],
        "terminal_late_ts": terminal[2],
        "terminal_late_flags": terminal[3],
        "terminal_holes": terminal[4],
        # the names of the drivers the state keeps (a fatigue alarm after the restart names
        # its driver), as strings: JSON keys
        "driver_names": {str(c): n for c, n in fleet.names.of(driver_codes(fleet.state)).items()},
    }
    arrays: dict[str, npt.NDArray[Any]] = {
        "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        "trend_of": np.asarray(table.trend_of, dtype=np.int64),
        "route": np.asarray(fleet.table.route, dtype=np.int32),
    }
    for f in dataclasses.fields(CoreState):
        arrays[f"core.{f.name}"] = getattr(core, f.name)
    for f in dataclasses.fields(FleetState):
        arrays[f"fleet.{f.name}"] = getattr(fleet.state, f.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # the hub's user's alone, like the databases beside it (`hazardhub.private`): it holds every
    # vehicle's driving and every sensor's state
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a .tmp left by a hub of before
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    size = tmp.stat().st_size
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return size


def driver_codes(st: FleetState) -> list[int]:
    """Every driver the fleet's state holds: driving, said, kept in a crew place."""
    codes = np.concatenate([st.driver, st.driver_said, st.crew_driver.ravel()])
    return [int(c) for c in np.unique(codes) if c]


def load(path: Path) -> Saved | None:
    """The saved state, or None when there is none or it cannot be read (logged)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("version") != VERSION:
                raise ValueError(f"version {meta.get('version')!r}, not {VERSION}")
            fresh_core = CoreState.empty(0)
            core = {
                f.name: data[f"core.{f.name}"]
                if f"core.{f.name}" in data.files
                else getattr(fresh_core, f.name)
                for f in dataclasses.fields(CoreState)
            }
            # a field the file does not have (saved by an older hub) starts afresh
            fresh_fleet = FleetState.new(len(meta["vehicles"]))
            fleet = {
                f.name: data[f"fleet.{f.name}"]
                if f"fleet.{f.name}" in data.files
                else getattr(fresh_fleet, f.name)
                for f in dataclasses.fields(FleetState)
            }
            return Saved(
                saved_ms=int(meta["saved_ms"]),
                sensors=[(str(a), str(b)) for a, b in meta["sensors"]],
                trend_of=data["trend_of"].astype(np.int64),
                # a file of before the trend times' offsets holds absolute ones: converted
                core=CoreState(**core).with_ring_offsets(),
                vehicles=[str(v) for v in meta["vehicles"]],
                route=data["route"].astype(np.int32),
                fences=str(meta["fences"]),
                fleet=FleetState(**fleet),
                terminal_flags={str(k): int(v) for k, v in meta["terminal_flags"].items()},
                terminal_last_ts={str(k): int(v) for k, v in meta["terminal_last_ts"].items()},
                terminal_late_ts={
                    str(k): int(v) for k, v in meta.get("terminal_late_ts", {}).items()
                },  # (none in a file of an older hub, as below)
                terminal_late_flags={
                    str(k): int(v) for k, v in meta.get("terminal_late_flags", {}).items()
                },
                terminal_holes={
                    str(k): [[int(a), int(b)] for a, b in v]
                    for k, v in meta.get("terminal_holes", {}).items()
                },
                driver_names={
                    int(k): str(v) for k, v in meta.get("driver_names", {}).items()
                },  # none in a file of an older hub
            )
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        log.error("analytics state %s not used: %s", path, exc)
        return None


def resume(
    saved: Saved, sensors: Sequence[SensorInfo], table: RuleTable, fleet_table: FleetTable
) -> tuple[CoreState, FleetAlarms, TerminalAlarms]:
    """The saved state matched to the running configuration by id, with every alarm side
    lowered: the caller restores the active alarms of the state database on top (`restore` of
    `AlarmBook`, `FleetAlarms` and `TerminalAlarms`), so that the database decides which are
    active. Delays, sums and episodes in progress are kept."""
    core, _ = remap_core(saved.core, saved.sensors, saved.trend_of, sensors, table)
    core = replace(core, level=np.zeros_like(core.level), active=np.zeros_like(core.active))
    # the lateness window starts afresh from the state as the database restores it: its saved
    # checkpoint knows levels the database may not (`evaluate` makes it at the first batch)
    core = core.with_lateness(0)
    fleet = remap_fleet_state(saved.fleet, saved.vehicles, saved.route, saved.fences, fleet_table)
    fleet.names = DriverNames(saved.driver_names)
    st = fleet.state
    for flag in (
        st.over_raised,
        st.cont_raised,
        st.daily_raised,
        st.weekly_raised,
        st.offline_raised,
        st.drift_open,  # its last implausible fix and count kept: `FleetAlarms.restore`
    ):
        flag[:] = False
    st.in_route[:] = True  # outside a corridor only with its alarm open (restore)
    st.forbidden[:] = 0
    index = {s.id: s.index for s in sensors}
    late = (saved.terminal_late_ts, saved.terminal_late_flags, saved.terminal_holes)
    terminal = remap_terminal(({}, saved.terminal_last_ts, *late), index)  # bits: the database's
    return core, fleet, terminal


def afresh(
    core: CoreState, fleet: FleetAlarms, ended: tuple[list[Ended], list[Ended]], saved_ms: int
) -> None:
    """Start afresh, in place, the running delays of the sides whose alarm ended after the
    state was saved (`AlarmBook.ended`: the core's and the fleet's, with no alarm active now):
    at a reading or a fix newer than the state's last one of the sensor or vehicle, or recorded
    by the hub at or after `saved_ms`. The state still holds their condition running, and its
    next excess would be judged as going on since the old start: raised at once, not after its
    delay. What is not an alarm's delay is kept (a coach's driving time, the sums)."""
    for i, side, end, at in ended[0]:
        if at < saved_ms and end <= int(core.last_ts[i]):
            continue  # ended before the save: the state knows
        if side in (ABOVE, BELOW):
            cols = slice(side * SLOTS, (side + 1) * SLOTS)
            core.raw[i, cols] = False
            core.run_start[i, cols] = RUN_START0
            core.run_count[i, cols] = RUN_CAP
        elif side == FROZEN:
            core.frozen_since[i] = NO_TS
        elif side == MAINTENANCE:
            core.maint_since[i] = NO_TS
    slot_of = fleet.table.slot_of
    st = fleet.state
    for vehicle, side, end, at in ended[1]:
        if not 0 <= vehicle < slot_of.shape[0] or slot_of[vehicle] < 0:
            continue
        s = int(slot_of[vehicle])
        if at < saved_ms and st.has_fix[s] and end <= int(st.last_ts[s]):
            continue
        kind = kind_name(side)
        if kind == "overspeed":
            st.over_active[s] = st.over_raised[s] = False
            st.over_since[s] = 0
        elif kind == "drift":
            st.drift_open[s] = False
            st.drift_last[s] = st.drift_count[s] = 0
