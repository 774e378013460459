"""Rate of rise and early warning ("trends") over the last judged readings of a sensor, as fixed
(rows x depth) windows over the batch; no Python loop per reading.

Semantics (also in `alerts.reference`, which is their specification):

* A sensor with a rate of rise or an early warning keeps its last `depth` (`TREND_DEPTH`, 32)
  judged readings. The window of a judged reading at event time t is the kept readings, itself
  included, at or after t - window (so a window holds at most `depth` readings). With a lateness
  window the buffers keep `late_depth` readings more (`RuleTable.trend_keep` columns), so that a
  rewound sensor finds the readings before its checkpoint; windows still hold at most `depth`.
* Rate of rise (RATE, level 0/1): with at least two readings in the window, the rise is
  (v - v_oldest) * 60000 / (t - t_oldest) per minute (newest against the oldest reading in the
  window: one subtraction and one division, exactly reproducible). It raises the alarm when it
  is more than `per_min`, clears it when it is less than `per_min * recover_factor`, else (and
  with fewer than two readings) leaves it as it is.
* Early warning (EARLY, level = the number of the level foreseen): with at least two readings in
  the window, the least-squares slope b of value over time (x = t_i - t in ms; means, then
  centered sums, each summed oldest first) projects when the value reaches the next threshold
  above the sensor's level after this reading: eta = (threshold - v) / b. The warning is on,
  at that level's number, when b > 0 and 0 < eta < horizon; otherwise off. Each judged reading
  decides alone: it clears when the projection goes beyond the horizon, and when the level is
  reached (then the level alarm takes over; the warning may go on for the next level).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from alerts.segments import ring_offsets, segment_ends, segment_starts
from alerts.state import I64, CoreState, Part, level_changes
from alerts.table import EARLY, RATE, SLOTS, RuleTable

__all__ = ["judge_trends"]

F64 = npt.NDArray[np.float64]


def _sum(terms: F64, mask: npt.NDArray[np.bool_]) -> F64:
    """Sums over the window (axis 0, oldest first) of the masked terms, added from 0.0 in order
    as the reference's loop does (np.sum adds pairwise and would round differently). The loop
    runs over the window's positions (at most `depth`), each step over all readings."""
    terms = np.where(mask, terms, 0.0)
    total: F64 = np.zeros(terms.shape[1])
    for k in range(terms.shape[0]):
        total += terms[k]
    return total


def _slope(x: F64, wv: F64, mask: npt.NDArray[np.bool_], count: I64) -> F64:
    """Least-squares slope of wv over x, windows in columns (NaN without a time spread)."""
    n = count.astype(np.float64)
    mx, mv = _sum(x, mask) / n, _sum(wv, mask) / n
    dx = x - mx[None, :]
    sxx = _sum(dx * dx, mask)
    sxy = _sum(dx * (wv - mv[None, :]), mask)
    slope: F64 = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), np.nan)
    return slope


class _Rows:
    """The readings of the touched trend rows, each row's kept ones (positions -n..-1, read from
    its ring buffer) followed by its readings of the batch (0..c-1), gathered by position: the
    sequence is never built. Ring layout: slot `(head + q) % keep` holds position q < 0 (`head`:
    where the next reading goes; head 0 is the right-aligned layout)."""

    __slots__ = (
        "base",
        "head",
        "held",
        "hist_ts",
        "hist_v",
        "keep",
        "row",
        "start",
        "t",
        "t0",
        "v",
    )

    def __init__(self, state: CoreState, row: I64, start: I64, t: I64, v: F64, held: I64) -> None:
        self.keep = state.hist_ts.shape[1]
        self.held = held  # per reading: the readings its row's ring holds
        # per reading: the flat offset of its row's ring plus its head, and where its row's
        # readings start in the batch
        self.row = row
        self.base = row * self.keep
        self.start = start
        self.hist_ts = state.hist_ts.reshape(-1)
        self.hist_v = state.hist_v.reshape(-1)
        self.t, self.v = t, v
        self.head = state.hist_head[row].astype(np.int64)
        self.t0 = state.hist_base[row]  # what the ring's times are offsets from

    def _index(
        self, q: I64, i: npt.NDArray[np.intp] | slice
    ) -> tuple[npt.NDArray[np.bool_], I64, I64]:
        inb = q >= 0
        batch = np.where(inb, self.start[i] + q, 0)
        # a kept position (-keep <= q < 0; a batch one reads any slot, unused) as a slot: head +
        # q is in [-keep, keep), wrapped by one comparison
        at = self.head[i] + np.minimum(q, -1)
        ring = self.base[i] + at + self.keep * (at < 0)
        return inb, batch, ring

    def both(self, q: I64, i: npt.NDArray[np.intp] | slice = slice(None)) -> tuple[I64, F64]:
        inb, batch, ring = self._index(q, i)
        return (
            np.where(inb, self.t[batch], self.hist_ts[ring] + self.t0[i]),
            np.where(inb, self.v[batch], self.hist_v[ring]),
        )


def _wrap(x: I64, keep: int) -> I64:
    """x mod keep, for -keep <= x < 2 * keep without numpy's integer division (about 20 times
    slower than two comparisons); other values by it."""
    if x.size and (int(x.min()) < -keep or int(x.max()) >= 2 * keep):
        out: I64 = x % keep
        return out
    wrapped: I64 = x + keep * (x < 0) - keep * (x >= keep)
    return wrapped


def _window_start(rows: _Rows, oldest: I64, pos: I64, since: I64) -> I64:
    """Per reading at `pos`: the first position in [oldest, pos] with ts >= since (ts rises
    within a row; the reading itself always qualifies), as `oldest` plus the number of positions
    in [oldest, pos] before `since`. The oldest position answers for most readings of a busy
    sensor; for the others the kept part is counted over the ring's row at once (one contiguous
    row per reading rather than a binary search's scattered reads; no order needed: of a full
    ring, its slots before `since` less the positions before the oldest, which are before it
    too; of another, a mask of the slots at positions >= oldest); only when all of it is before
    `since` does the batch part count, by a vectorized binary search over the readings' rows in
    the batch."""
    lo = oldest.copy()
    more = pos > np.maximum(oldest, 0)  # batch positions before the reading in the window
    kept = np.flatnonzero(oldest < 0)
    keep = rows.keep
    if kept.shape[0]:
        # the oldest kept reading in the window answers for most readings of a busy sensor
        # (windows longer than the buffer): one read each, then the ring for the others only
        old_k = oldest[kept]
        slot = rows.head[kept] + old_k  # in [-keep, keep)
        slot += keep * (slot < 0)
        out = rows.hist_ts[rows.base[kept] + slot] < since[kept] - rows.t0[kept]
        more[kept[~out]] = False
        kept = kept[out]
    if kept.shape[0]:
        old_k = oldest[kept]
        ring = np.take(rows.hist_ts.reshape(-1, keep), rows.row[kept], axis=0)
        mask = ring < (since[kept] - rows.t0[kept])[:, None]
        short = rows.held[kept] < keep  # (a full ring's slots all hold kept readings)
        part = np.flatnonzero(short)
        if part.shape[0]:
            at = rows.head[kept[part]] * (keep + 1) + (keep + old_k[part])
            mask[part] &= np.take(_masks(keep), at, axis=0)
        before = _count(mask) - np.where(short, 0, keep + old_k)
        lo[kept] += before
        more[kept] &= before == -old_k
    b = np.flatnonzero(more)
    if not b.shape[0]:
        return lo
    # the batch part: positions max(oldest, 0) .. pos, in the batch's rows (contiguous per row)
    lo_b = np.maximum(lo[b], 0)
    hi, since_b, first = pos[b], since[b], rows.start[b]
    while True:
        open_ = np.flatnonzero(lo_b < hi)
        if not open_.shape[0]:
            lo[b] = lo_b
            return lo
        mid = (lo_b[open_] + hi[open_]) // 2
        right = rows.t[first[open_] + mid] < since_b[open_]
        lo_b[open_] = np.where(right, mid + 1, lo_b[open_])
        hi[open_] = np.where(right, hi[open_], mid)


@functools.lru_cache(maxsize=4)
def _masks(keep: int) -> npt.NDArray[np.bool_]:
    """Row h * (keep + 1) + k: the ring slots j of a ring with head h at positions >= k - keep,
    ((j - h) mod keep >= k): the kept readings of a window that starts there."""
    j = np.arange(keep)[None, None, :]
    h = np.arange(keep)[:, None, None]
    k = np.arange(keep + 1)[None, :, None]
    masks: npt.NDArray[np.bool_] = (((j - h) % keep) >= k).reshape(keep * (keep + 1), keep)
    return masks


_BYTES = np.uint64(0x0101010101010101)


def _count(mask: npt.NDArray[np.bool_]) -> I64:
    """The set flags of each row of `mask`: rows of whole words (up to 255 flags) are added as
    words (byte lanes), then a word's bytes by one multiplication into its top byte."""
    if mask.shape[1] % 8 or mask.shape[1] > 255 or not mask.flags.c_contiguous:
        plain: I64 = np.count_nonzero(mask, axis=1).astype(np.int64)
        return plain
    words = mask.view(np.uint64).sum(axis=1, dtype=np.uint64)
    counts: I64 = ((words * _BYTES) >> np.uint64(56)).astype(np.int64)
    return counts


_SPAN = 2**31 - 1  # the offsets' reach either side of a row's base (int32)


def _rebase(new: CoreState, touched: I64, base: I64, first: I64, newest: I64) -> I64:
    """The bases of the `touched` rows (`base`: before the batch, as `new` holds them) for
    readings from `first` to `newest` (per row); a row whose readings the offsets cannot reach
    from its base is rebased at its newest reading (its kept offsets shifted; one older than
    int32 can tell kept as the oldest). An empty ring (every row of a fresh state) only takes
    its base: it keeps nothing to shift."""
    base = base.copy()
    move = np.flatnonzero((newest - base > _SPAN) | (base - first > _SPAN))
    if move.shape[0]:
        empty = new.hist_n[touched[move]] == 0
        new.hist_base[touched[move[empty]]] = newest[move[empty]]
        base[move[empty]] = newest[move[empty]]
        move = move[~empty]
    if move.shape[0]:
        rows, to = touched[move], newest[move]
        kept = new.hist_ts[rows].astype(np.int64) + (base[move] - to)[:, None]
        new.hist_ts[rows] = ring_offsets(kept, np.zeros((1, 1), dtype=np.int64))
        new.hist_base[rows] = to
        base[move] = to
    return base


def judge_trends(
    table: RuleTable,
    state: CoreState,
    new: CoreState,
    s: I64,
    t: I64,
    v: F64,
    above: I64,
) -> list[Part]:
    """Rate of rise and early warning of judged readings (sorted by sensor, then time); `above`
    is each reading's level above after it. Updates the trend buffers of `new`."""
    trend_row = table.trend_of[s]
    sel = np.flatnonzero(trend_row >= 0)
    if not sel.shape[0]:
        return []
    s, t, v, above = s[sel], t[sel], v[sel], above[sel]
    row = trend_row[sel]
    depth = table.trend_depth  # readings a window may hold
    keep = new.hist_ts.shape[1]  # readings the buffers keep (trend_keep)
    bstart = segment_starts(row)
    starts = np.flatnonzero(bstart)
    touched = row[starts]
    seg = np.cumsum(bstart) - 1
    first = starts[seg]
    pos = np.arange(row.shape[0]) - first  # each reading's position in its row's sequence
    hn = state.hist_n[touched].astype(np.int64)
    oldest = np.maximum(-hn[seg], pos - (depth - 1))  # the oldest reading a window may hold
    rows = _Rows(state, row, first, t, v, hn[seg])
    parts: list[Part] = []
    ss = s[starts]
    ends = np.flatnonzero(segment_ends(bstart))
    with np.errstate(divide="ignore", invalid="ignore"):
        if table.has_rate:
            low = _window_start(rows, oldest, pos, t - table.rate_window[row])
            known = low < pos
            low_t, low_v = rows.both(low)
            rise = (v - low_v) * 60000.0 / (t - low_t)
            on = known & (rise > table.rate_on[row])
            decisive = on | (known & (rise < table.rate_off[row]))
            seed = state.level[:, RATE][ss].astype(np.int64)  # (a column's: faster than 2-D)
            k = np.arange(t.shape[0])
            src = np.where(decisive, k, -1)
            src[starts] = starts
            np.maximum.accumulate(src, out=src)
            base = on.astype(np.int64)
            base[starts] = np.where(decisive[starts], base[starts], seed)
            rate = base[src]
            parts.append(level_changes(s, t, v, rate, seed, starts, RATE))
            new.level[s[ends], RATE] = rate[ends]
        if table.has_early:
            window = table.early_window[row]
            low = _window_start(rows, oldest, pos, np.where(window > 0, t - window, t))
            slope = np.full(t.shape[0], np.nan)
            fit = np.flatnonzero(low < pos)  # two readings or more in the window
            count = pos[fit] - low[fit] + 1
            band = np.ceil(np.log2(count)).astype(np.int64) if fit.shape[0] else count
            for b in np.unique(band).tolist():
                # windows of up to 2**b readings, in columns (oldest first down each column)
                f = fit[band == b]
                width = int(count[band == b].max())
                q = pos[f][None, :] + (np.arange(width) - (width - 1))[:, None]
                win = q >= low[f][None, :]
                q = np.maximum(q, low[f][None, :])
                wt, wv = rows.both(q, np.broadcast_to(f, q.shape))
                x = (wt - t[f][None, :]).astype(np.float64)
                slope[f] = _slope(x, wv, win, count[band == b])
            target = np.minimum(above, SLOTS - 1)
            thr = np.where(above < SLOTS, table.threshold[s, target], np.nan)
            eta = (thr - v) / slope
            on = (slope > 0) & (eta > 0) & (eta < table.early_horizon[row])
            early = np.where(on, above + 1, 0).astype(np.int64)
            seed = state.level[:, EARLY][ss].astype(np.int64)
            parts.append(level_changes(s, t, v, early, seed, starts, EARLY))
            new.level[s[ends], EARLY] = early[ends]
    # the new buffers: each row's last `keep` readings written into its ring
    count = np.diff(np.append(starts, row.shape[0]))
    # (each row's head and base as `_Rows` read them per reading: no second gather by row)
    head = rows.head[starts]
    base = _rebase(new, touched, rows.t0[starts], t[starts], t[ends])
    if int(count.max()) <= keep:  # (the common case: every reading is written, no gathers)
        at = rows.head + pos  # in [0, 2 * keep)
        at -= keep * (at >= keep)
        slot = row * keep + at
        new.hist_ts.reshape(-1)[slot] = t - base[seg]  # (within int32: `_rebase`)
        new.hist_v.reshape(-1)[slot] = v
    else:
        last = np.flatnonzero(pos >= count[seg] - keep)
        slot = row[last] * keep + _wrap(head[seg[last]] + pos[last], keep)
        new.hist_ts.reshape(-1)[slot] = t[last] - base[seg[last]]
        new.hist_v.reshape(-1)[slot] = v[last]
    new.hist_head[touched] = _wrap(head + count, keep)
    new.hist_n[touched] = np.minimum(hn + count, keep)
    return parts
