"""The fleet's lateness window: a late position is judged in event-time order by rewinding its
vehicle (the sensors' `alerts.lateness`, for positions).

Without a window (`FleetTable.lateness_ms` 0) a position at or before its vehicle's last judged
fix is late: counted, not judged (`evaluate_fleet`). With a window of L ms, per vehicle:

* `FleetHistory` keeps the vehicle's last `RING` fixes (the ring) and the checkpoint: the
  vehicle's state just before the ring's oldest fix, set at its first batch (the state before
  it). Fixes that no longer fit are judged onto the checkpoint, the oldest first: the ring
  always holds the vehicle's last `RING` fixes, whatever their pace or batches (each fix is
  judged once more when it leaves the ring: the window's in-order cost).
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

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.vehicles.episodes import NAMES, OF, Row, chain, levels
from alerts.vehicles.evaluate import Out, _order, clock, judge_rows
from alerts.vehicles.state import EventKind, FleetEvents, FleetState, Positions
from alerts.vehicles.table import FleetTable

__all__ = ["RING", "FleetHistory", "evaluate_late"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]
RING = 32  # fixes kept per vehicle since its checkpoint: its last ones


@dataclass(slots=True, eq=False)
class FleetHistory:
    """Per vehicle slot: the fixes judged since the checkpoint and the checkpoint (see the
    module's docstring). Changed in place by `evaluate_late`; `undo()` puts back the last
    batch's changes (a batch whose alarms could not be written is judged again)."""

    ck: FleetState
    ck_ok: B  # a checkpoint is set (none before the vehicle's first batch)
    ring_n: I64
    ring_ts: I64  # (vehicles, RING)
    ring_lat: F64
    ring_lon: F64
    ring_v: F64
    ring_d: I64
    ring_a: npt.NDArray[np.int8]  # ACC (1 on, 0 off, -1 not said)
    # (vehicles, episodes): the latest event time told of each episode (`episodes.NAMES`)
    told: I64
    # of the last batch: late positions judged in order, not judged, and of these, within the
    # window but at or before the checkpoint
    rewound: int = 0
    late: int = 0
    late_in_window: int = 0
    _undo: list[I64] = field(default_factory=list)  # the slots the last batch judged in order
    # the rewound slots' rings and checkpoints before the last batch
    _saved: list[tuple[npt.NDArray[Any], I64, npt.NDArray[Any]]] = field(default_factory=list)

    @classmethod
    def new(cls, n: int) -> FleetHistory:
        return cls(
            ck=FleetState.new(n),
            ck_ok=np.zeros(n, dtype=np.bool_),
            ring_n=np.zeros(n, dtype=np.int64),
            ring_ts=np.zeros((n, RING), dtype=np.int64),
            ring_lat=np.zeros((n, RING), dtype=np.float64),
            ring_lon=np.zeros((n, RING), dtype=np.float64),
            ring_v=np.zeros((n, RING), dtype=np.float64),
            ring_d=np.zeros((n, RING), dtype=np.int64),
            ring_a=np.full((n, RING), -1, dtype=np.int8),
            told=np.full((n, len(NAMES)), np.iinfo(np.int64).min, dtype=np.int64),
        )

    def undo(self) -> None:
        """Put the history back as it was before the last `evaluate_late` (a batch whose alarms
        could not be written is judged again, from the state before it): the rewound vehicles'
        kept fixes and checkpoints as they were (their late positions are rewound again), the
        others' forgotten (their rings start again at their next batch: cheaper than keeping
        every vehicle's ring for an undo)."""
        for slots in self._undo:
            self.ck_ok[slots] = False
            self.ring_n[slots] = 0
        for array, slots, old in reversed(self._saved):
            array[slots] = old
        self._undo.clear()
        self._saved.clear()

    def _save(self, slots: I64) -> None:
        """Keep the rings and checkpoints of `slots` for `undo`."""
        for a in (self.ck_ok, self.ring_n, self.ring_ts, self.ring_lat, self.ring_lon):
            self._saved.append((a, slots, a[slots]))
        for a in (self.ring_v, self.ring_d):
            self._saved.append((a, slots, a[slots]))
        self._saved.append((self.ring_a, slots, self.ring_a[slots]))
        for f in dataclasses.fields(FleetState):
            a = getattr(self.ck, f.name)
            self._saved.append((a, slots, a[slots]))


@dataclass(frozen=True, slots=True)
class _Cols:
    """Positions as columns (`Positions`), with their drivers."""

    vehicle: npt.NDArray[np.int32]
    ts: I64
    lat: F64
    lon: F64
    speed_kmh: F64
    driver: I64
    acc: npt.NDArray[np.int8]


def _copy_rows(dst: FleetState, src: FleetState, slots: I64) -> None:
    if slots.size:
        for f in dataclasses.fields(FleetState):
            getattr(dst, f.name)[slots] = getattr(src, f.name)[slots]


def _heads(s: I64) -> tuple[I64, I64, I64]:
    """Of rows sorted by slot: each slot's first row, its count, and each row's group."""
    first = np.ones(s.shape, dtype=np.bool_)
    first[1:] = s[1:] != s[:-1]
    fi = np.flatnonzero(first)
    count = np.diff(np.append(fi, s.shape[0]))
    return fi, count, np.cumsum(first) - 1


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


def _keep(
    table: FleetTable,
    hist: FleetHistory,
    before: FleetState,
    batch: Positions,
    rows: I64,
    s: I64,
    t: I64,
) -> None:
    """The rings and checkpoints of vehicles judged in order: a vehicle's first batch sets its
    checkpoint to its state before it; fixes that no longer fit are judged onto the
    checkpoint, the oldest first, so the ring holds the last `RING` fixes."""
    fi, m, _ = _heads(s)
    sl = s[fi]
    hist._undo.append(sl)
    first = sl[~hist.ck_ok[sl]]
    if first.size:
        _copy_rows(hist.ck, before, first)
        hist.ck_ok[first] = True
        hist.ring_n[first] = 0
    n = hist.ring_n[sl]
    fold = n + m - RING
    over = fold > 0
    fits = np.repeat(~over, m)
    if fits.any():  # appended after the kept fixes
        at = np.repeat(sl * RING + n - fi, m) + np.arange(s.shape[0])
        _write(hist, at[fits], t[fits], batch, rows[fits])
        hist.ring_n[sl[~over]] = (n + m)[~over]
    if over.any():
        _fold(table, hist, batch, sl[over], n[over], fold[over], rows[~fits], s[~fits])


def _write(hist: FleetHistory, at: I64, t: I64, batch: Positions, r: I64) -> None:
    """Batch rows `r` into the rings' flat places `at`."""
    hist.ring_ts.reshape(-1)[at] = t
    hist.ring_lat.reshape(-1)[at] = np.asarray(batch.lat, dtype=np.float64)[r]
    hist.ring_lon.reshape(-1)[at] = np.asarray(batch.lon, dtype=np.float64)[r]
    hist.ring_v.reshape(-1)[at] = np.asarray(batch.speed_kmh, dtype=np.float64)[r]
    drivers = getattr(batch, "driver", None)
    hist.ring_d.reshape(-1)[at] = 0 if drivers is None else np.asarray(drivers, np.int64)[r]
    acc = getattr(batch, "acc", None)
    hist.ring_a.reshape(-1)[at] = -1 if acc is None else np.asarray(acc, np.int8)[r]


def _fold(
    table: FleetTable,
    hist: FleetHistory,
    batch: Positions,
    sl: I64,
    n: I64,
    fold: I64,
    rows: I64,
    s: I64,
) -> None:
    """Of vehicles `sl` whose `n` kept fixes and batch rows `rows` (slots `s`) overflow the
    ring: judge the oldest `fold` onto the checkpoint, keep the last `RING`."""
    ring_slot = np.repeat(sl, n)
    col = np.arange(ring_slot.shape[0]) - np.repeat(np.cumsum(n) - n, n)
    bfi, _, bgrp = _heads(s)
    pos = np.concatenate([col, n[bgrp] + np.arange(s.shape[0]) - bfi[bgrp]])
    slot = np.concatenate([ring_slot, s])
    order = np.lexsort((pos, slot))
    slot, pos = slot[order], pos[order]
    drivers = getattr(batch, "driver", None)
    bd = np.zeros(rows.shape, np.int64) if drivers is None else np.asarray(drivers)[rows]
    acc = getattr(batch, "acc", None)
    ba = np.full(rows.shape, -1, np.int8) if acc is None else np.asarray(acc, np.int8)[rows]

    def column(ring: npt.NDArray[Any], given: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.concatenate([ring[ring_slot, col], np.asarray(given)[rows]])[order]

    cols = _Cols(
        table.index[slot].astype(np.int32),
        column(hist.ring_ts, batch.ts).astype(np.int64),
        column(hist.ring_lat, batch.lat).astype(np.float64),
        column(hist.ring_lon, batch.lon).astype(np.float64),
        column(hist.ring_v, batch.speed_kmh).astype(np.float64),
        np.concatenate([hist.ring_d[ring_slot, col], bd])[order].astype(np.int64),
        np.concatenate([hist.ring_a[ring_slot, col], ba])[order].astype(np.int8),
    )
    cut = np.zeros(len(table), dtype=np.int64)
    cut[sl] = fold
    old = pos < cut[slot]
    o = np.flatnonzero(old)
    judge_rows(table, hist.ck, cols, o, slot[o], cols.ts[o], Out(hist.ck))
    k = np.flatnonzero(~old)
    where = slot[k] * RING + pos[k] - cut[slot[k]]
    hist.ring_ts.reshape(-1)[where] = cols.ts[k]
    hist.ring_lat.reshape(-1)[where] = cols.lat[k]
    hist.ring_lon.reshape(-1)[where] = cols.lon[k]
    hist.ring_v.reshape(-1)[where] = cols.speed_kmh[k]
    hist.ring_d.reshape(-1)[where] = cols.driver[k]
    hist.ring_a.reshape(-1)[where] = cols.acc[k]
    hist.ring_n[sl] = RING


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
