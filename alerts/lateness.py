"""The lateness window: a late reading is judged in event-time order by rewinding its sensor.

Without a window (`RuleTable.lateness_ms` 0, the default) a reading at or before its sensor's last
processed event time is late: counted, not judged. With a window of L ms and K readings
(`late_depth`, `LATE_DEPTH` = 8), per watched sensor that is not a voting group:

* The core keeps the sensor's last K processed readings (the ring, any quality) and a checkpoint:
  the sensor's state just before the oldest of them. After each batch the ring holds the last K
  readings by event time; older ones are folded into the checkpoint (judged on it again).
* A late reading (at or before the sensor's last processed time) is rewound when it is within
  the window (last processed time - t <= L) and after the checkpoint's time; it is then judged in
  order: the sensor's state is set back to the checkpoint and the ring's readings and the batch's
  readings of the sensor are judged again in event-time order (of equal event times the batch's
  reading counts, the last in input order, as the store keeps it). Older late readings are
  counted late and not judged, as without a window; those within L but at or before the
  checkpoint (more than K readings in the window) are counted apart (`Outcome.late_in_window`).
* What is run again: the sensor's process levels (hysteresis, delays, N-in-a-row), sensor fault,
  no data (gaps; the hub's clock is checked at the end of the re-run), rate of rise and early
  warning (the trend buffers keep K readings more to find the readings before the checkpoint).
  Voting groups and action verification are judged on arrival: they see the transitions that
  come out (below) of the rewound sensor, and its batch readings as feedback; a group judges a
  member's change at its event time, or just after the group's last judged time when that is
  later (`alerts.vote`). A rewound sensor's ACTION side is never rewound.

Transitions of a rewound sensor, per side (the re-run "new" against the readings without the
batch, "old", both from the checkpoint and with the hub's clock checked at their end; "live" is
the side's level before the batch, as a consumer applying all earlier transitions has it):

1. The new run's transitions that the old run does not have (same event time, before and after)
   and that are later than the last transition of the side that came out (`CoreState.told`:
   the latest a consumer was told of it) are taken in time order; each whose level differs
   from the one before it (the live level for the first) comes out, its `before` being that
   level. So what a consumer already knows is not raised again, every transition continues the
   previous one, and none goes back before what the consumer was told: an episode the late
   readings reveal before a raise already told (raised and cleared at 15 and 20 s, the told
   raise at 50 s) does not clear the running alarm to raise it again (helper-129); the
   correction below sets the end level.
2. If the level reached so differs from the new run's final level, a corrective transition from
   it to the final level comes out, stamped with the latest event time at which either run
   changed the side's level (the new run's on a tie; with that transition's value), so that a
   correction never goes back before what a consumer was told; or, when neither changed it, with
   the earliest rewound reading's time and no value.

A consumer applying all transitions in order (as `alerts.alarms.AlarmBook` applies `after` per
sensor and side) thus ends at the core's levels, and the core's state is that of a core that got
the readings in event-time order (property-tested with the twin in `alerts.reference` and
`alerts.rewind`).

What comes out of a rewound sensor (items 1 and 2) is made in `alerts.latechain`.

The cost is paid only with a window: the ring and checkpoint (about 140 + 17 K bytes per sensor,
16 K per trend sensor) and one more pass folding readings into the checkpoints; the re-runs only
for sensors with late readings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from alerts.latechain import _chain, _split
from alerts.nodata import silence
from alerts.rerun import checkpoint_state, subset_table
from alerts.segments import distinct
from alerts.state import (
    CK_FIELDS,
    I64,
    CoreState,
    Outcome,
    Part,
    Readings,
    Transitions,
)
from alerts.table import ABOVE, ACTION, BELOW, SIDES, RuleTable
from alerts.verify import UNMEASURED
from telemetry.quality import Quality

__all__ = ["LateResult", "Runner", "classify", "judge_late", "side_part"]

F64 = npt.NDArray[np.float64]
Runner = Callable[..., tuple[CoreState, Transitions, Outcome]]
_SIDES_REWOUND = np.array([s for s in range(SIDES) if s != ACTION], dtype=np.intp)


@dataclass(frozen=True, slots=True)
class LateResult:
    """What the late stage hands back to the main pass."""

    parts: list[Part]  # the rewound sensors' transitions (items 1 and 2 above)
    above: Part | None  # of these, the side above (votes, verification); None: none rewound
    feed: tuple[I64, I64, F64]  # the rewound sensors' valued batch readings (sensor, ts, value)
    judged: int  # of their batch readings, judged against levels
    below: Part | None = None  # the side below (a verification demanding below: a fan's stop)
    # the rewound sensors' batch readings that fail a held plan's break without a value
    # (sensor, ts; `alerts.verify.UNMEASURED`): a table with held plans only
    unread: tuple[I64, I64] | None = None


def classify(
    table: RuleTable, state: CoreState, sensor: I64, ts: I64, late: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Of the late readings: those to rewind, and those within L but at or before the
    checkpoint."""
    within = late & table.rewinds[sensor]
    within &= state.last_ts[sensor] - ts <= table.lateness_ms
    rewind = within & (ts > state.ck_last_ts[sensor])
    return rewind, within & ~rewind


def _combine(
    state: CoreState, u: I64, bs: I64, bt: I64, bv: F64, bq: npt.NDArray[np.uint8], merge: bool
) -> tuple[I64, I64, I64, F64, npt.NDArray[np.uint8]]:
    """Per sensor of `u` (sorted, unique): its ring, then its batch readings (`bs` sorted, all
    in `u`), as one sequence; with `merge`, sorted by time and of equal times the batch's kept.
    Returns (segment offsets, lengths, ts, value, quality)."""
    depth = state.ring_ts.shape[1]
    col = np.arange(depth)
    hn = state.ring_n[u].astype(np.int64)
    m = np.searchsorted(bs, u, "right") - np.searchsorted(bs, u, "left")
    seglen = hn + m
    offset = np.cumsum(seglen) - seglen
    total = int(seglen.sum())
    ct = np.empty(total, dtype=np.int64)
    cv = np.empty(total, dtype=np.float64)
    cq = np.empty(total, dtype=np.uint8)
    kept = col[None, :] >= (depth - hn)[:, None]
    hpos = (offset[:, None] + col[None, :] - (depth - hn)[:, None])[kept]
    ct[hpos], cv[hpos], cq[hpos] = (
        state.ring_ts[u][kept],
        state.ring_v[u][kept],
        state.ring_q[u][kept],
    )
    seg = np.searchsorted(u, bs)
    bstart = np.searchsorted(bs, u, "left")
    pos = offset[seg] + hn[seg] + (np.arange(bs.shape[0]) - bstart[seg])
    ct[pos], cv[pos], cq[pos] = bt, bv, bq
    if not merge:
        return offset, seglen, ct, cv, cq
    owner = np.repeat(np.arange(u.shape[0]), seglen)
    batch = np.zeros(total, dtype=np.bool_)
    batch[pos] = True
    order = np.lexsort((batch, ct, owner))
    owner, ct, cv, cq = owner[order], ct[order], cv[order], cq[order]
    last = np.ones(total, dtype=np.bool_)
    last[:-1] = (owner[1:] != owner[:-1]) | (ct[1:] != ct[:-1])
    owner, ct, cv, cq = owner[last], ct[last], cv[last], cq[last]
    seglen = np.bincount(owner, minlength=u.shape[0]).astype(np.int64)
    return np.cumsum(seglen) - seglen, seglen, ct, cv, cq


def _rings(state: CoreState, u: I64) -> tuple[I64, I64, F64, npt.NDArray[np.uint8]]:
    """The ring readings of sensors `u` as (row of u, ts, value, quality), by row then time."""
    depth = state.ring_ts.shape[1]
    kept = np.arange(depth)[None, :] >= (depth - state.ring_n[u].astype(np.int64))[:, None]
    owner = np.broadcast_to(np.arange(u.shape[0])[:, None], kept.shape)[kept]
    return (
        owner.astype(np.int64),
        state.ring_ts[u][kept],
        state.ring_v[u][kept],
        state.ring_q[u][kept],
    )


def side_part(parts: list[Part], side: int) -> Part:
    """The transitions of one side among `parts`, by (sensor, time)."""
    rows = [
        tuple(np.asarray(x)[m] for x in (p[0], p[1], p[2], p[4], p[5]))
        for p in parts
        for m in [np.broadcast_to(np.asarray(p[3]), p[0].shape) == side]
    ]
    s, t, v, b, a = (np.concatenate([row[i] for row in rows]) for i in range(5))
    order = np.lexsort((t, s))
    return s[order], t[order], v[order], side, b[order], a[order]


def _write_rows(table: RuleTable, new: CoreState, sub_new: CoreState, ru: I64, at: I64) -> None:
    """The rewound sensors' state after their new runs (rows `at` of the sub-state), all but
    the ACTION side; and their trend buffers (the new runs' come first in the sub-state)."""
    for f in CK_FIELDS:
        if f == "level":
            new.level[ru[:, None], _SIDES_REWOUND[None, :]] = sub_new.level[at][:, _SIDES_REWOUND]
        else:
            getattr(new, f)[ru] = getattr(sub_new, f)[at]
    trow = table.trend_of[ru]
    trow = trow[trow >= 0]
    k = trow.shape[0]
    new.hist_ts[trow] = sub_new.hist_ts[:k]
    new.hist_v[trow] = sub_new.hist_v[:k]
    new.hist_n[trow] = sub_new.hist_n[:k]
    new.hist_head[trow] = sub_new.hist_head[:k]
    new.hist_base[trow] = sub_new.hist_base[:k]


def judge_late(
    run: Runner,
    table: RuleTable,
    state: CoreState,
    new: CoreState,
    main: tuple[I64, I64, F64, npt.NDArray[np.uint8]],
    late: tuple[I64, I64, F64, npt.NDArray[np.uint8], I64],
    now: int | None,
) -> LateResult:
    """Rewind the sensors with late readings to rewind (`late`: their kept batch readings
    sorted by (sensor, time), and the earliest rewound time per sensor of `np.unique` of them),
    and keep the rings and checkpoints of all: `main` are the other sensors' kept batch readings
    (sorted, all after their sensors' last processed times). Writes the rewound sensors' rows,
    the rings and the checkpoints into `new`; `run` is the core's pass (`_evaluate`)."""
    ms, mt, mv, mq = main
    sel = np.flatnonzero(table.rewinds[ms])
    ms, mt, mv, mq = ms[sel], mt[sel], mv[sel], mq[sel]
    rs, rt, rv, rq, t0 = late
    mu = distinct(ms, ordered=True)
    ru = distinct(rs, ordered=True)
    r = ru.shape[0]
    depth = table.late_depth
    m_off, m_len, m_t, m_v, m_q = _combine(state, mu, ms, mt, mv, mq, merge=False)
    r_off, r_len, r_t, r_v, r_q = _combine(state, ru, rs, rt, rv, rq, merge=True)
    # who folds which readings into the checkpoint: all but the last K of each sequence
    fold_s, fold_t, fold_v, fold_q = [], [], [], []
    for u, off, ln, ct, cv, cq in (
        (mu, m_off, m_len, m_t, m_v, m_q),
        (ru, r_off, r_len, r_t, r_v, r_q),
    ):
        owner = np.repeat(np.arange(u.shape[0]), ln)
        at = np.arange(ct.shape[0]) - off[owner]
        out = np.flatnonzero(at < (ln - depth)[owner])
        fold_s.append(u[owner[out]])
        fold_t.append(ct[out])
        fold_v.append(cv[out])
        fold_q.append(cq[out])
    fs = np.concatenate(fold_s)
    order = np.argsort(fs, kind="stable")
    fs, ft, fv, fq = (
        fs[order],
        np.concatenate(fold_t)[order],
        np.concatenate(fold_v)[order],
        np.concatenate(fold_q)[order],
    )
    fu = distinct(fs, ordered=True)
    parts: list[Part] = []
    above: Part | None = None
    below: Part | None = None
    if r or fu.shape[0]:
        # one pass over the checkpoints: rows [new runs (r), old runs (r), folds]
        rows = np.concatenate([ru, ru, fu])
        sub = subset_table(table, rows)
        sub_state = checkpoint_state(table, state, new, rows)
        r_owner = np.repeat(np.arange(r), r_len)
        o_s, o_t, o_v, o_q = _rings(state, ru)
        batch = Readings(
            np.concatenate([r_owner, r + o_s, 2 * r + np.searchsorted(fu, fs)]).astype(np.int32),
            np.concatenate([r_t, o_t, ft]),
            np.concatenate([r_v, o_v, fv]),
            np.concatenate([r_q, o_q, fq]),
        )
        sub_new, sub_tr, _ = run(sub, batch, sub_state, None, groups=True, inplace=True)
        if r:
            extra: list[Part] = []
            if now is not None:
                p = silence(sub, sub_new, now, np.arange(2 * r, dtype=np.int64))
                if p is not None:
                    extra.append(p)
            n_tr, o_tr = _split(sub_tr, extra, r)
            parts = _chain(n_tr, o_tr, new.level[ru], sub_new.level[:r], t0, new.told[ru])
            parts = [(ru[p[0]], p[1], p[2], p[3], p[4], p[5]) for p in parts]
            above = side_part(parts, ABOVE)
            below = side_part(parts, BELOW)
            _write_rows(table, new, sub_new, ru, np.arange(r))
        if fu.shape[0]:
            at = np.arange(2 * r, 2 * r + fu.shape[0])
            for f in CK_FIELDS:
                getattr(new, f"ck_{f}")[fu] = getattr(sub_new, f)[at]
    # the rings: the last K of each sequence
    for u, off, ln, ct, cv, cq in (
        (mu, m_off, m_len, m_t, m_v, m_q),
        (ru, r_off, r_len, r_t, r_v, r_q),
    ):
        col = np.arange(depth)
        end = off + ln - 1
        idx = end[:, None] + (col - (depth - 1))[None, :]
        ok = idx >= off[:, None]
        idx = np.clip(idx, 0, max(ct.shape[0] - 1, 0))
        if ct.shape[0]:
            new.ring_ts[u] = np.where(ok, ct[idx], 0)
            new.ring_v[u] = np.where(ok, cv[idx], np.nan)
            new.ring_q[u] = np.where(ok, cq[idx], 0)
        new.ring_n[u] = ok.sum(axis=1)
    # the rewound sensors' feedback readings, and their judged count
    with np.errstate(invalid="ignore"):
        valued = ((rq == Quality.GOOD) | (rq == Quality.OUT_OF_RANGE)) & np.isfinite(rv)
    judged = int((valued & table.has_rules[rs]).sum())
    vi = np.flatnonzero(valued)
    unread = None
    if table.has_hold:
        ui = np.flatnonzero(np.isin(rq, UNMEASURED))
        unread = (rs[ui], rt[ui])
    return LateResult(parts, above, (rs[vi], rt[vi], rv[vi]), judged, below, unread)
