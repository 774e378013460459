"""A vehicle's episodes (an alarm raised and not yet ended: overspeed, fatigue, corridor, drift ...)
and what a re-run of the lateness window lets out of them (`alerts.vehicles.lateness`, whose
docstring states the rule; shared by the core and its reference, `alerts.vehicles.reflate`)."""

from __future__ import annotations

import math
from typing import Any

from alerts.vehicles.state import EventKind
from alerts.vehicles.table import DAY_MS

__all__ = ["EPISODES", "NAMES", "OF", "Row", "chain", "levels"]

# episode -> (raise, end); the moments have none
EPISODES: dict[str, tuple[EventKind, EventKind]] = {
    "over": (EventKind.OVERSPEED, EventKind.OVERSPEED_END),
    "cont": (EventKind.FATIGUE_CONTINUOUS, EventKind.FATIGUE_CONTINUOUS_END),
    "daily": (EventKind.FATIGUE_DAILY, EventKind.FATIGUE_DAILY_END),
    "weekly": (EventKind.FATIGUE_WEEKLY, EventKind.FATIGUE_WEEKLY_END),
    "route": (EventKind.CORRIDOR_LEAVE, EventKind.CORRIDOR_ENTER),
    "area": (EventKind.FORBIDDEN_ENTER, EventKind.FORBIDDEN_END),
    "off": (EventKind.OFFLINE, EventKind.OFFLINE_END),
    "drift": (EventKind.DRIFT, EventKind.DRIFT_END),
}
OF: dict[EventKind, tuple[str, bool]] = {
    k: (name, i == 0) for name, pair in EPISODES.items() for i, k in enumerate(pair)
}
_APART = frozenset({"drift"})  # episodes whose raise and end values measure apart
NAMES = list(EPISODES)  # an episode's column in `FleetHistory.told`
Row = tuple[EventKind, int, float, int, int]  # kind, ts, value, ref, driver


def levels(get: Any) -> dict[str, bool]:
    """Which episodes are raised, from a vehicle's state (`get(name)`: a field's value)."""
    return {
        "over": bool(get("over_raised")),
        "cont": bool(get("cont_raised")),
        "daily": bool(get("daily_raised")),
        "weekly": bool(get("weekly_raised")),
        "route": not bool(get("in_route")),
        "area": int(get("forbidden")) != 0,
        "off": bool(get("offline_raised")),
        "drift": bool(get("drift_open")),
    }


def chain(
    live: dict[str, bool],
    final: dict[str, bool],
    old: list[Row],
    new: list[Row],
    t0: int,
    driver: int,
    told: dict[str, int],
    ban: tuple[int, int] = (-1, 0),
) -> list[Row]:
    """Items 1 and 2 of the module's docstring for one vehicle: `old` and `new` are the runs'
    events in event-time order, `t0` the earliest rewound time, `driver` the vehicle's now,
    `told` per episode the latest event time the consumer was told of it (`tell`), `ban` its
    ban window's start and the table's offset (ms): a night ban is known by its window, not
    its time (once per window, whichever fix raised it)."""

    def key(kind: EventKind, t: int, ref: int) -> tuple[int, int, int]:
        if kind == EventKind.BANNED_HOURS:
            return (kind, (t + ban[1] - ban[0]) // DAY_MS, 0)
        return (kind, t, ref)

    known = {key(k, t, r) for k, t, _, r, _ in old}
    level = dict(live)
    out: list[Row] = []
    for row in new:
        kind, t, _, ref, _ = row
        if key(kind, t, ref) in known:
            continue
        of = OF.get(kind)
        if of is None:
            out.append(row)
        elif of[0] in told and t <= told[of[0]]:
            continue  # older than what the consumer was told of the episode
        elif level[of[0]] != of[1]:
            level[of[0]] = of[1]
            out.append(row)
    for name, (up, down) in EPISODES.items():
        if level[name] == final[name]:
            continue
        last: Row | None = None
        for run in (old, new):  # the new run's on a tie
            for row in run:
                if row[0] in (up, down) and (last is None or row[1] >= last[1]):
                    last = row
        kind = up if final[name] else down
        floor = told.get(name, t0)  # never before what was told of it
        # a drift's raise (km/h) and end (a count) measure apart: a correction of the one kind
        # never carries the other's value (helper-147: "1801 个 implausible fixes", "1 km/h")
        unknown = 0.0 if name not in _APART else math.nan
        if last is None:
            out.append((kind, max(t0, floor), unknown, -1, driver))
        else:
            ref = last[3] if kind == last[0] else -1
            value = last[2] if kind == last[0] or name not in _APART else math.nan
            out.append((kind, max(last[1], floor), value, ref, driver))
    return out
