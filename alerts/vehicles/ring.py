"""The fleet lateness window's ring (`alerts.vehicles.lateness`): per vehicle, its last `RING`
fixes and the checkpoint before them (`FleetHistory`), and how a batch judged in order keeps
them (`_keep`): the fixes that no longer fit are judged onto the checkpoint, the oldest first.
Split from `alerts.vehicles.lateness`, which rewinds a vehicle from them; the code moved as it
was.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.vehicles.episodes import NAMES
from alerts.vehicles.evaluate import Out, judge_rows
from alerts.vehicles.state import FleetState, Positions
from alerts.vehicles.table import FleetTable

__all__ = ["RING", "FleetHistory"]


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
