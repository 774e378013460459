"""The fleet's lateness window: a late position is judged in event-time order by rewinding its
vehicle (the sensors' `alerts.lateness`, for positions).

Without a window (`FleetTable.lateness_ms` 0) a position at or before its vehicle's last judged
fix is late: counted, not judged (`evaluate_fleet`). With a window of L ms, per vehicle:

* `FleetHistory` (`alerts.vehicles.ring`) keeps the vehicle's last `RING` fixes (the ring) and
  the checkpoint: the vehicle's state just before the ring's oldest fix, set at its first batch
  (the state before it). Fixes that no longer fit are judged onto the checkpoint, the oldest
  first: the ring always holds the vehicle's last `RING` fixes, whatever their pace or batches
  (each fix is judged once more when it leaves the ring: the window's in-order cost).
* A late position (at or before the vehicle's last fix) is *rewound* when it is within the
  window (last fix - t <= L) and after the checkpoint's last fix; a position at the time of a
  kept fix (or of the last one) is a duplicate, neither judged nor counted late. The vehicle's
  state is set back to the checkpoint and the ring's fixes and the batch's (late and in order)
  are judged again, merged in event-time order (a kept fix wins over a batch position of its
  time). Late positions older than the window, or at or before the checkpoint's last fix, are
  counted late and not judged, as without a window (`late`; of them `late_in_window`: within L
  but before the checkpoint).

What comes out for a rewound vehicle (the sensors' rule, per episode: overspeed, fatigue,
fatigue_daily, fatigue_weekly, corridor, forbidden area, offline, drift). The re-run with the late
positions ("new") is compared with a re-run of the ring alone from the same checkpoint ("old",
what was judged before); "live" is the episode's state before the batch, as a consumer applying
all earlier events has it:

1. The new run's events that the old run does not have (same kind, event time and ref) and that
   are later than the latest event of their episode told to the consumer (`FleetHistory.told`:
   in order or by a rewind) are taken in event-time order; a raise comes out when the episode
   is not raised at that point, an end when it is (the live state for the first), so nothing a
   consumer already knows is raised or ended again, and nothing older than what it was told (an
   alarm still going is not ended and raised again, an end never precedes its raise). A moment
   (moved while offline) comes out when it is new; a night ban when the old run had none
   in its window (once per window, whichever fix raised it).
2. If the state reached so differs from the new run's final one, a correcting raise or end comes
   out, stamped with the latest event time at which either run raised or ended that episode (the
   new run's on a tie, with that event's value), or with the earliest rewound position's time,
   and never before the latest told of it.

Events of the old run that the new one contradicts are not taken back: a consumer was told
them; (2) brings it to where an in-order stream would have left it. A moment already told stays.
An `OFFLINE` the clock raised after the vehicle's last fix stays raised when the re-run ends at
that same fix (the silence goes on).

Cost, only with a window: the ring (`RING` fixes of 5 columns of 8 bytes and the ACC's byte)
and a checkpoint (a `FleetState` row, 4,059 bytes with `CREW` = 2: 3,468 of them the rolling
24 h's slots of the driver and of the two kept) and `told` (8 episodes, 64 bytes): about 5.4 KB
per vehicle; in order, each batch writes its fixes into the rings and judges the fixes leaving
them onto the checkpoints (each fix is judged twice).
The re-runs cost only for vehicles with late positions. Not saved: a restarted hub, or one whose
fleet configuration changed, starts the rings afresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.vehicles.episodes import NAMES, OF, Row, chain, levels
from alerts.vehicles.evaluate import Out, _order, clock, judge_rows
from alerts.vehicles.ring import RING, FleetHistory, _Cols, _copy_rows, _heads, _keep
from alerts.vehicles.state import EventKind, FleetEvents, FleetState, Positions
from alerts.vehicles.table import FleetTable

__all__ = ["RING", "FleetHistory", "evaluate_late"]

I64 = npt.NDArray[np.int64]


def evaluate_late(
    table: FleetTable, state: FleetState, hist: FleetHistory, batch: Positions, now: int
) -> tuple[FleetState, FleetEvents]:
    """`evaluate_fleet` with the lateness window (see the module's docstring); `hist` is
    changed in place (its counts are the batch's)."""
    hist._undo.clear()
    hist._saved.clear()
    hist.rewound = hist.late = hist.late_in_window = 0
    st = state.copy()
    out = Out(st)
    dropped: list[I64] = []
    rows, s, t = _order(table, st, batch, dropped)
    veh = np.asarray(batch.vehicle)
    ts = np.asarray(batch.ts, dtype=np.int64)
    rewind = np.zeros(0, dtype=np.int64)
    lr = dropped[0] if dropped else rewind
    if lr.size:
        ls = table.slot_of[veh[lr]].astype(np.int64)
        lt = ts[lr]
        k = hist.ring_n[ls]
        kept = (hist.ring_ts[ls] == lt[:, None]) & (np.arange(RING)[None, :] < k[:, None])
        dup = kept.any(axis=1) | (lt == state.last_ts[ls])
        within = state.last_ts[ls] - lt <= table.lateness_ms
        after = hist.ck_ok[ls] & (~hist.ck.has_fix[ls] | (lt > hist.ck.last_ts[ls]))
        go = within & after & ~dup
        hist.rewound = int(np.count_nonzero(go))
        hist.late = int(np.count_nonzero(~go & ~dup))
        hist.late_in_window = int(np.count_nonzero(within & ~after & ~dup))
        rewind = lr[go]
    slots = np.unique(table.slot_of[veh[rewind]]).astype(np.int64)
    if slots.size:
        again = np.isin(s, slots)
        main = np.flatnonzero(~again)
        rows_m, s_m, t_m = rows[main], s[main], t[main]
        rows_r = rows[again]
    else:
        rows_m, s_m, t_m, rows_r = rows, s, t, rows[:0]
    if rows_m.size:
        judge_rows(table, st, batch, rows_m, s_m, t_m, out)
        st.heard[s_m] = now
        _keep(table, hist, state, batch, rows_m, s_m, t_m)
    if slots.size:
        _rewind(table, state, st, hist, batch, slots, np.concatenate([rows_r, rewind]), now, out)
    clock(table, st, now, out)
    events = out.events(table)
    _tell(table, hist, events)
    return st, events


# an event's episode column in `FleetHistory.told` (-1: a moment), by kind
_EPISODE = np.full(max(int(k) for k in EventKind) + 1, -1, dtype=np.int64)
for _k, (_name, _) in OF.items():
    _EPISODE[int(_k)] = NAMES.index(_name)


def _tell(table: FleetTable, hist: FleetHistory, events: FleetEvents) -> None:
    """Keep the latest event time told of each episode (what a rewind tells nothing older
    than); the rows changed are saved for `undo`."""
    col = _EPISODE[events.kind.astype(np.int64)]
    m = col >= 0
    if not m.any():
        return
    slots = table.slot_of[events.vehicle[m]].astype(np.int64)
    hist._saved.append((hist.told, slots, hist.told[slots]))
    np.maximum.at(hist.told, (slots, col[m]), events.ts[m])


def _rewind(
    table: FleetTable,
    before: FleetState,
    st: FleetState,
    hist: FleetHistory,
    batch: Positions,
    slots: I64,
    brows: I64,
    now: int,
    out: Out,
) -> None:
    """Judge the vehicles of `slots` again from their checkpoints: their kept fixes and the
    batch's rows `brows` (late and in order), merged in event-time order."""
    hist._save(slots)
    k = hist.ring_n[slots]
    ring_slot = np.repeat(slots, k)
    col = np.arange(ring_slot.shape[0]) - np.repeat(np.cumsum(k) - k, k)
    veh = np.asarray(batch.vehicle)
    drivers = getattr(batch, "driver", None)
    bd = np.zeros(brows.shape, np.int64) if drivers is None else np.asarray(drivers)[brows]
    acc = getattr(batch, "acc", None)
    ba = np.full(brows.shape, -1, np.int8) if acc is None else np.asarray(acc, np.int8)[brows]
    slot = np.concatenate([ring_slot, table.slot_of[veh[brows]].astype(np.int64)])
    tt = np.concatenate([hist.ring_ts[ring_slot, col], np.asarray(batch.ts)[brows]])
    src = np.concatenate([np.zeros(ring_slot.shape, np.int64), np.ones(brows.shape, np.int64)])
    order = np.lexsort((np.concatenate([col, brows]), src, tt, slot))
    slot, tt, src = slot[order], tt[order], src[order]
    first = np.ones(slot.shape, dtype=np.bool_)
    first[1:] = (slot[1:] != slot[:-1]) | (tt[1:] != tt[:-1])
    order, slot, tt, src = order[first], slot[first], tt[first], src[first]

    def column(ring: npt.NDArray[Any], given: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.concatenate([ring[ring_slot, col], np.asarray(given)[brows]])[order]

    cols = _Cols(
        table.index[slot].astype(np.int32),
        tt,
        column(hist.ring_lat, batch.lat).astype(np.float64),
        column(hist.ring_lon, batch.lon).astype(np.float64),
        column(hist.ring_v, batch.speed_kmh).astype(np.float64),
        np.concatenate([hist.ring_d[ring_slot, col], bd])[order].astype(np.int64),
        np.concatenate([hist.ring_a[ring_slot, col], ba])[order].astype(np.int8),
    )
    # the old run: the kept fixes alone, from the checkpoint
    scratch = hist.ck.copy()
    old = Out(scratch)
    o = np.flatnonzero(src == 0)
    if o.size:
        judge_rows(table, scratch, cols, o, slot[o], tt[o], old)
    # the new run, into the state; the checkpoint moves when the merged run outgrows the ring
    st.own_week()
    st.own_crew()
    _copy_rows(st, hist.ck, slots)
    new = Out(st)
    fi, count, grp = _heads(slot)
    at = np.arange(slot.shape[0]) - fi[grp]
    cut = np.maximum(count - RING, 0)
    head = np.flatnonzero(at < cut[grp])
    tail = np.flatnonzero(at >= cut[grp])
    if head.size:
        judge_rows(table, st, cols, head, slot[head], tt[head], new)
        _copy_rows(hist.ck, st, slot[fi][cut > 0])
    judge_rows(table, st, cols, tail, slot[tail], tt[tail], new)
    st.heard[slots] = now
    goes_on = before.offline_raised[slots] & (st.last_ts[slots] == before.last_ts[slots])
    st.offline_raised[slots[goes_on]] = True  # a silence the clock found goes on
    # the rings: the last fixes of each merged run
    hist.ring_n[slots] = count - cut
    pos = at[tail] - cut[grp[tail]]
    where = slot[tail] * RING + pos
    hist.ring_ts.reshape(-1)[where] = tt[tail]
    hist.ring_lat.reshape(-1)[where] = cols.lat[tail]
    hist.ring_lon.reshape(-1)[where] = cols.lon[tail]
    hist.ring_v.reshape(-1)[where] = cols.speed_kmh[tail]
    hist.ring_d.reshape(-1)[where] = cols.driver[tail]
    hist.ring_a.reshape(-1)[where] = cols.acc[tail]
    # what comes out
    t0 = np.full(len(table), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(t0, slot[src == 1], tt[src == 1])
    old_rows = _by_slot(old.events(table), table)
    new_rows = _by_slot(new.events(table), table)
    emit: list[tuple[int, Row]] = []
    for sl in slots.tolist():
        live = levels(lambda name, sl=sl: getattr(before, name)[sl])
        final = levels(lambda name, sl=sl: getattr(st, name)[sl])
        got = chain(
            live,
            final,
            old_rows.get(sl, []),
            new_rows.get(sl, []),
            int(t0[sl]),
            int(st.driver[sl]),
            dict(zip(NAMES, hist.told[sl].tolist(), strict=True)),
            (int(table.ban_start_ms[sl]), table.offset_ms),
        )
        emit.extend((sl, row) for row in got)
    if emit:
        out.add_rows(
            np.array([e[0] for e in emit], dtype=np.int64),
            np.array([int(e[1][0]) for e in emit], dtype=np.int64),
            np.array([e[1][1] for e in emit], dtype=np.int64),
            np.array([e[1][2] for e in emit], dtype=np.float64),
            np.array([e[1][3] for e in emit], dtype=np.int64),
            np.array([e[1][4] for e in emit], dtype=np.int64),
        )


def _by_slot(events: FleetEvents, table: FleetTable) -> dict[int, list[Row]]:
    """Events by slot, in their order (event time)."""
    rows: dict[int, list[Row]] = {}
    slots = table.slot_of[events.vehicle].tolist()
    for sl, k, t, v, r, d in zip(
        slots,
        events.kind.tolist(),
        events.ts.tolist(),
        events.value.tolist(),
        events.ref.tolist(),
        events.driver.tolist(),
        strict=True,
    ):
        rows.setdefault(sl, []).append((EventKind(k), t, v, r, d))
    return rows
