"""From fleet analytics to alarms: the events of `evaluate_fleet` raise a vehicle's alarms, the
state they leave behind clears them.

One alarm per vehicle and kind (overspeed, fatigue, fatigue_daily, night_ban, corridor,
forbidden_area, offline, drift), on the vehicle's speed sensor. Each raise and each clear is an
event of the core with its own event time, whatever the batching: an overspeed clears at the
first fix back under its limit, a fatigue alarm when the qualifying rest is complete, the daily
one when its 24 h fell back to the limit (or at the local midnight: `daily_window`), a corridor
alarm at the first fix back on the route, a forbidden-area one when the vehicle has left every
such area (or their windows closed), offline at the next fix,
a GPS drift at the first plausible fix `drift_quiet_s` after its episode's last implausible one
(one alarm per episode, not one per fix: its clear's value is the implausible fixes counted).
Night driving of a coach in its banned hours and a move while the terminal was silent are
moments: raised and returned at once, left for an operator to acknowledge.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from alerts.table import FLEET_KINDS, FLEET_SIDE0
from alerts.vehicles.evaluate import evaluate_fleet
from alerts.vehicles.lateness import FleetHistory, evaluate_late
from alerts.vehicles.state import EventKind, FleetEvents, FleetState, Positions
from alerts.vehicles.table import FleetTable

__all__ = [
    "FLEET_ALARMS",
    "MAX_DRIVER_NAMES",
    "DriverNames",
    "FleetAlarms",
    "FleetChange",
    "daily_action",
    "fleet_side",
]

log = logging.getLogger(__name__)
MAX_DRIVER_NAMES = 100_000  # drivers' ids kept to name them in alarms (the least recent go)

# kind -> (level name, tier, action)
FLEET_ALARMS: dict[str, tuple[str, str, str]] = {
    "overspeed": ("overspeed", "orange", "超速: 通知驾驶员减速 tell the driver to slow down"),
    "fatigue": ("fatigue_continuous", "orange", "疲劳驾驶: 停车休息 20 分钟 the driver must rest"),
    # a raise says its class's window and limit (`daily_action`); this is the default's
    "fatigue_daily": (
        "fatigue_daily",
        "orange",
        "24小时内累计驾驶超时 over 8 h in 24 h: change driver",
    ),
    "fatigue_weekly": (
        "fatigue_weekly",
        "orange",
        "7日累计驾驶超时 over 44 h in 7 days: the driver must not drive on",
    ),
    "night_ban": ("night_ban", "red", "客车 02:00-05:00 禁行 the coach must stop"),
    "corridor": ("off_route", "orange", "偏离线路 off the approved route: call the driver"),
    "forbidden_area": ("forbidden_area", "red", "驶入禁行区域 in a forbidden area: call now"),
    "offline": ("offline", "yellow", "终端离线 check the terminal and its link"),
    "drift": ("gps_drift", "blue", "定位漂移 check the antenna"),
    "offline_moved": (
        "offline_moved",
        "orange",
        "离线位移: 终端离线期间车辆移动 it moved while its terminal was silent: call the driver, "
        "check the terminal",
    ),
}
_RAISES = {
    EventKind.OVERSPEED: "overspeed",
    EventKind.FATIGUE_CONTINUOUS: "fatigue",
    EventKind.FATIGUE_DAILY: "fatigue_daily",
    EventKind.FATIGUE_WEEKLY: "fatigue_weekly",
    EventKind.BANNED_HOURS: "night_ban",
    EventKind.CORRIDOR_LEAVE: "corridor",
    EventKind.FORBIDDEN_ENTER: "forbidden_area",
    EventKind.OFFLINE: "offline",
    EventKind.DRIFT: "drift",
    EventKind.OFFLINE_MOVED: "offline_moved",
}
_ENDS = {
    EventKind.OVERSPEED_END: "overspeed",
    EventKind.FATIGUE_CONTINUOUS_END: "fatigue",
    EventKind.FATIGUE_DAILY_END: "fatigue_daily",
    EventKind.FATIGUE_WEEKLY_END: "fatigue_weekly",
    EventKind.CORRIDOR_ENTER: "corridor",
    EventKind.FORBIDDEN_END: "forbidden_area",
    EventKind.OFFLINE_END: "offline",
    EventKind.DRIFT_END: "drift",
}
_MOMENTS = frozenset({"night_ban", "offline_moved"})


def daily_action(limit_ms: int, rolling: bool) -> str:
    """The action of a `fatigue_daily` raise: which window its class's rule counts over
    (`daily_window`), and its limit."""
    hours = f"{limit_ms / 3_600_000:.2f}".rstrip("0").rstrip(".")
    if rolling:
        return f"24小时内累计驾驶超时 over {hours} h in 24 h: change driver"
    return f"当日驾驶超时 over {hours} h today: change driver"


def fleet_side(kind: str) -> int:
    """The alarm kind number (the `side` column) of a fleet alarm kind."""
    return FLEET_SIDE0 + FLEET_KINDS.index(kind)


@dataclass(frozen=True, slots=True)
class FleetChange:
    vehicle: int  # the registry index of the vehicle's speed sensor
    kind: str  # a FLEET_KINDS entry
    level: int  # 1 raised, 0 returned
    ts: int  # event time (ms)
    # speed km/h, driving s, rest s, distance m, silence s, implausible fixes (EventKind)
    value: float
    limit_kmh: float | None = None  # an overspeed's raise: the limit that applied
    driver: str | None = None  # a raise: the driver (his id as said), when known
    # a raise of forbidden_area or corridor: the area entered, the route left (`Zone.said`)
    zone: str | None = None
    # a raise whose action is its vehicle's own, not its kind's (`FLEET_ALARMS`): fatigue_daily
    # says the window and limit of its class (`daily_action`)
    action: str | None = None


class DriverNames:
    """The drivers' ids by their code (`FleetState` keeps codes): a fleet alarm names its driver
    with them. Bounded at `MAX_DRIVER_NAMES`: the least recently said go first (counted in
    `forgotten`, logged once); a driver said again is named again."""

    def __init__(self, names: Mapping[int, str] | None = None) -> None:
        self._names: OrderedDict[int, str] = OrderedDict(names or {})
        self.forgotten = 0

    def __len__(self) -> int:
        return len(self._names)

    def learn(self, names: Mapping[int, str]) -> None:
        for code, name in names.items():
            self._names[code] = name
            self._names.move_to_end(code)
        while len(self._names) > MAX_DRIVER_NAMES:
            self._names.popitem(last=False)
            if not self.forgotten:
                log.warning(
                    "more than %d drivers said: the least recent are no longer named in alarms",
                    MAX_DRIVER_NAMES,
                )
            self.forgotten += 1

    def get(self, code: int) -> str | None:
        return self._names.get(code) if code else None

    def of(self, codes: Iterable[int]) -> dict[int, str]:
        """The names of `codes` that are known (what a saved state keeps)."""
        return {c: n for c in set(codes) if c and (n := self._names.get(c)) is not None}


class FleetAlarms:
    """The fleet's analytics state and the alarm changes each batch makes."""

    def __init__(self, table: FleetTable) -> None:
        self.table = table
        self.state = FleetState.new(len(table))
        self.names = DriverNames()
        # of the last batch judged: positions older than their vehicle's newest judged one,
        # which the fleet's rules skip (stored, on the track, in no alarm) ...
        self.last_late = 0
        # ... of these, within the lateness window but before the vehicle's checkpoint; and
        # late positions judged in order within the window (`alerts.vehicles.lateness`)
        self.last_late_in_window = 0
        self.last_rewound = 0
        # the window's kept fixes and checkpoints, made at the first batch (not saved)
        self.history: FleetHistory | None = None

    def restore(self, active: Iterable[tuple[int, str] | tuple[int, str, int]]) -> None:
        """Mark the (vehicle, kind) alarms still active after a restart as raised, so that
        the core ends their episode as it would have and does not raise them twice (a third
        item, when given: the event time the alarm was raised)."""
        slot_of = self.table.slot_of
        st = self.state
        for item in active:
            vehicle, kind = item[0], item[1]
            if not 0 <= vehicle < slot_of.shape[0] or slot_of[vehicle] < 0:
                continue
            s = int(slot_of[vehicle])
            if kind == "overspeed":
                st.over_raised[s] = st.over_active[s] = True
            elif kind == "fatigue":
                st.cont_raised[s] = True
            elif kind == "fatigue_daily":
                st.daily_raised[s] = True
            elif kind == "fatigue_weekly":
                st.weekly_raised[s] = True
            elif kind == "offline":
                st.offline_raised[s] = True
            elif kind == "drift" and not st.drift_open[s]:
                # the episode's last implausible fix and count are the saved state's when it
                # had this episode open (`snapshot.resume` keeps them; not raised after its
                # last implausible fix), else unknown: the quiet is counted from the raise
                # (or the vehicle's last fix known) and the fixes from the restart
                st.drift_open[s] = True
                since = item[2] if len(item) > 2 else None
                if not st.drift_count[s] or (since is not None and since > st.drift_last[s]):
                    st.drift_last[s] = st.last_ts[s] if since is None else since
                    st.drift_count[s] = 0
            elif kind == "corridor":
                st.in_route[s] = False
            elif kind == "forbidden_area":  # inside some area: leaving them all clears it
                st.forbidden[s] = np.uint64((1 << len(self.table.forbidden)) - 1)

    def judge(self, batch: Positions, now: int) -> list[FleetChange]:
        """Evaluate a batch (or none: the clock's silence check) and return the alarm changes,
        in event time."""
        if not len(self.table):
            return []
        said = getattr(batch, "driver_names", None)
        if said:
            self.names.learn(said)
        self.last_late = self.last_late_in_window = self.last_rewound = 0
        if self.table.lateness_ms > 0:
            if self.history is None:
                self.history = FleetHistory.new(len(self.table))
            new, events = evaluate_late(self.table, self.state, self.history, batch, now)
            self.last_late = self.history.late
            self.last_late_in_window = self.history.late_in_window
            self.last_rewound = self.history.rewound
            return self._changes(new, events)
        if len(batch.ts):
            slot = self.table.slot_of[np.clip(batch.vehicle, 0, self.table.slot_of.shape[0] - 1)]
            known = (batch.vehicle < self.table.slot_of.shape[0]) & (slot >= 0)
            slot, ts = slot[known], batch.ts[known]
            st = self.state
            self.last_late = int(np.count_nonzero(st.has_fix[slot] & (ts < st.last_ts[slot])))
        new, events = evaluate_fleet(self.table, self.state, batch, now)
        return self._changes(new, events)

    def undo(self, state: FleetState) -> None:
        """Go back to `state`, the state before the last `judge` (whose alarms could not be
        written: the batch is judged again)."""
        self.state = state
        if self.history is not None:
            self.history.undo()

    def _changes(self, new: FleetState, events: FleetEvents) -> list[FleetChange]:
        changes: list[FleetChange] = []
        drivers = events.driver.tolist()
        for (vehicle, kind, ts, value, ref), code in zip(events.rows(), drivers, strict=True):
            name = _ENDS.get(kind)
            if name is not None:
                changes.append(FleetChange(vehicle, name, 0, ts, value))
                continue
            name = _RAISES[kind]
            limit = ref / 10 if kind == EventKind.OVERSPEED else None
            # a move while the terminal was silent is named by no one: the card seen after it
            # may not be of the driver who moved it (helper-97)
            who = None if kind == EventKind.OFFLINE_MOVED else self.names.get(code)
            zone = None
            if kind == EventKind.FORBIDDEN_ENTER and 0 <= ref < len(self.table.forbidden):
                zone = self.table.forbidden[ref].said
            elif kind == EventKind.CORRIDOR_LEAVE and 0 <= ref < len(self.table.corridors):
                zone = self.table.corridors[ref].said
            action = None
            if kind == EventKind.FATIGUE_DAILY:
                slot = int(self.table.slot_of[vehicle])
                tb = self.table
                action = daily_action(int(tb.daily_ms[slot]), bool(tb.daily_rolling[slot]))
            changes.append(FleetChange(vehicle, name, 1, ts, value, limit, who, zone, action))
            if name in _MOMENTS:
                changes.append(FleetChange(vehicle, name, 0, ts, value))
        self.state = new
        changes.sort(key=lambda c: c.ts)  # stable: a vehicle's changes keep the core's order
        return changes
