"""The lateness window in the per-position reference (`alerts.vehicles.reference`): the same
semantics as `alerts.vehicles.lateness`, written the obvious way (a vehicle's checkpoint is a
copy of its state, its kept fixes a list)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from alerts.vehicles.episodes import OF, Row, chain, levels
from alerts.vehicles.lateness import RING
from alerts.vehicles.state import RANK, EventKind

__all__ = ["Kept", "judge_late", "tell"]

MIN = -(2**63)

Fix = tuple[int, float, float, float, int, int]  # ts, lat, lon, speed, driver, acc
Event = tuple[int, EventKind, int, float, int, int]  # vehicle, kind, ts, value, ref, driver


@dataclass(slots=True)
class Kept:
    """A vehicle's fixes judged since its checkpoint, and the checkpoint (None: not yet)."""

    ck: Any = None
    fixes: list[Fix] = field(default_factory=list)
    told: dict[str, int] = field(default_factory=dict)  # per episode, its latest event told


def _rows(events: list[Event]) -> list[Row]:
    ordered = sorted(events, key=lambda e: (e[2], int(RANK[e[1]]), e[4]))
    return [(k, t, v, r, d) for _, k, t, v, r, d in ordered]


def judge_late(
    ref: Any,
    rows: list[tuple[int, int, int]],
    cols: tuple[list[float], list[float], list[float], list[int], list[int]],
    events: list[Event],
    now: int,
) -> None:
    """Judge a batch's `rows` ((slot, ts, row) in (slot, ts) order) with the window."""
    lat, lon, speed, drivers, acc = cols
    tb = ref.table
    ref.rewound = ref.late = ref.late_in_window = 0
    by_slot: dict[int, list[tuple[int, int]]] = {}
    for slot, ts, i in rows:
        by_slot.setdefault(slot, []).append((ts, i))
    for slot, items in by_slot.items():
        seen: set[int] = set()
        fixes: list[tuple[int, int]] = []
        for ts, i in items:  # of equal times in the batch the first counts
            if ts not in seen:
                seen.add(ts)
                fixes.append((ts, i))
        veh = ref.vehicles[slot]
        kept = ref.kept.setdefault(slot, Kept())
        before = copy.deepcopy(veh)

        def fix(ts: int, i: int) -> Fix:
            return (ts, lat[i], lon[i], speed[i], drivers[i], acc[i])

        fresh = [fix(ts, i) for ts, i in fixes if not veh.has_fix or ts > veh.last_ts]
        back: list[Fix] = []
        kept_ts = {f[0] for f in kept.fixes}
        for ts, i in fixes:
            if not veh.has_fix or ts > veh.last_ts or ts == veh.last_ts or ts in kept_ts:
                continue  # in order, or a duplicate
            within = veh.last_ts - ts <= tb.lateness_ms
            after = kept.ck is not None and (not kept.ck.has_fix or ts > kept.ck.last_ts)
            if within and after:
                back.append(fix(ts, i))
                ref.rewound += 1
            else:
                ref.late += 1
                ref.late_in_window += within
        if not back:
            for f in fresh:
                if ref._position(slot, f[0], f[1], f[2], f[3], events, f[4], f[5]):
                    veh.heard = now
            if fresh:
                if kept.ck is None:
                    kept.ck = before
                merged = kept.fixes + fresh
                cut = max(len(merged) - RING, 0)
                if cut:  # the oldest judged onto the checkpoint: the last RING kept
                    live, taken = veh, ref._changes.get(slot, 0)
                    ref.vehicles[slot] = kept.ck
                    ref._changes[slot] = 0
                    for f in merged[:cut]:
                        ref._position(slot, f[0], f[1], f[2], f[3], [], f[4], f[5])
                    ref.vehicles[slot] = live
                    ref._changes[slot] = taken
                kept.fixes = merged[cut:]
            continue
        merged = sorted(kept.fixes + back + fresh, key=lambda f: f[0])
        old: list[Event] = []
        ref.vehicles[slot] = copy.deepcopy(kept.ck)
        ref._changes[slot] = 0
        for f in kept.fixes:
            ref._position(slot, f[0], f[1], f[2], f[3], old, f[4], f[5])
        new: list[Event] = []
        ref.vehicles[slot] = v = copy.deepcopy(kept.ck)
        ref._changes[slot] = 0
        cut = max(len(merged) - RING, 0)
        for j, f in enumerate(merged):
            if j == cut and cut:
                kept.ck = copy.deepcopy(v)
                ref._changes[slot] = 0
            ref._position(slot, f[0], f[1], f[2], f[3], new, f[4], f[5])
        v.heard = now
        if before.offline_raised and v.last_ts == before.last_ts:
            v.offline_raised = True  # a silence the clock found goes on
        kept.fixes = merged[cut:]
        got = chain(
            levels(before.__getattribute__),
            levels(v.__getattribute__),
            _rows(old),
            _rows(new),
            min(f[0] for f in back),
            v.driver,
            {name: kept.told.get(name, MIN) for name in levels(v.__getattribute__)},
            (int(tb.ban_start_ms[slot]), tb.offset_ms),
        )
        ix = int(tb.index[slot])
        events.extend((ix, k, t, val, r, d) for k, t, val, r, d in got)


def tell(ref: Any, events: list[Event]) -> None:
    """Keep, per vehicle and episode, the latest event time told (`FleetHistory.told`)."""
    for ix, kind, t, _, _, _ in events:
        of = OF.get(kind)
        if of is not None:
            told = ref.kept.setdefault(ref.slot_of[ix], Kept()).told
            told[of[0]] = max(told.get(of[0], t), t)
