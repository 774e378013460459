"""Process levels of judged readings: hysteresis, then on/off delays and N-in-a-row, as forward
fills over the batch sorted by (sensor, time); no Python loop per reading."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.segments import segment_ends, segment_starts, segments_with
from alerts.state import I64, CoreState, Part
from alerts.table import ABOVE, RUN_CAP, SLOTS, RuleTable

__all__ = ["judge_levels"]


def _fill(
    decisive: npt.NDArray[np.bool_],
    value: npt.NDArray[np.bool_],
    seed: npt.NDArray[np.bool_],
    starts: npt.NDArray[np.intp],
) -> npt.NDArray[np.bool_]:
    """Forward-fill `value` from the decisive readings, a row per level column ((C, n): each
    row contiguous, which makes the running maximum several times faster than down columns);
    a segment (sensor) starts from its seed ((C, segments))."""
    src = _last(decisive, starts)
    base = value.copy()
    at_start = np.take(decisive, starts, axis=1)
    _put(base, starts, np.where(at_start, np.take(value, starts, axis=1), seed))
    out: npt.NDArray[np.bool_] = base.reshape(-1)[src]
    return out


def _last(mark: npt.NDArray[np.bool_], starts: npt.NDArray[np.intp]) -> I64:
    """Per (column, reading): the flat index of the last marked reading of its segment up to it,
    or of the segment's first reading."""
    c, n = mark.shape
    src: I64 = np.where(mark, np.arange(n), -1)
    _put(src, starts, starts)
    np.maximum.accumulate(src, axis=1, out=src)
    src += (np.arange(c) * n)[:, None]
    return src


def _put(x: npt.NDArray[Any], cols: npt.NDArray[np.intp], y: npt.NDArray[Any]) -> None:
    """x[:, cols] = y, a row at a time (numpy's 2-D fancy assignment is several times slower)."""
    for k in range(x.shape[0]):
        x[k][cols] = y if y.ndim == 1 else y[k]


def _flat(rows: I64, cols: npt.NDArray[np.intp]) -> I64:
    """Flat indices of (rows x cols) in an (n, 8) array: 1-D takes are much faster than 2-D."""
    flat: I64 = rows[:, None] * (2 * SLOTS) + cols[None, :]
    return flat


def judge_levels(
    table: RuleTable, state: CoreState, new: CoreState, s: I64, t: I64, v: npt.NDArray[np.float64]
) -> tuple[list[Part], I64]:
    """Process levels of judged readings (sorted by sensor, then time); returns the transitions
    and each reading's level above after it (the early warning's starting point). A sensor with
    no level on whose readings are all calm (`RuleTable.calm_below`) changes nothing but its run
    counts: only the other sensors' readings go through the passes."""
    n = s.shape[0]
    calm = (v < table.calm_below[s]) & (v > table.calm_above[s])
    hot = _on(state.raw, s) | _on(state.active, s)
    loud = ~calm | hot
    if loud.all():
        return _judge(table, state, new, s, t, v)
    keep = segments_with(s, loud)
    parts: list[Part] = []
    above: I64 = np.zeros(n, dtype=np.int64)
    if keep.any():
        parts, above_kept = _judge(table, state, new, s[keep], t[keep], v[keep])
        above[keep] = above_kept
    if table.has_delays:  # the off-runs of the calm sensors go on
        starts = np.flatnonzero(segment_starts(s))
        quiet = ~keep[starts]
        length = np.diff(np.append(starts, n))[quiet]
        calm_s = s[starts[quiet]]
        for c in table.columns.tolist():  # a column at a time (a 2-D index is slower)
            count = new.run_count[:, c]
            count[calm_s] = np.minimum(count[calm_s].astype(np.int64) + length, RUN_CAP)
    return parts, above


def _on(flags: npt.NDArray[np.bool_], s: I64) -> npt.NDArray[np.bool_]:
    """Per reading: whether any of its sensor's level flags ((n, 8)) is set."""
    on: npt.NDArray[np.bool_]
    if flags.shape[1] == 8 and flags.flags.c_contiguous:
        on = flags.view(np.uint64).reshape(-1)[s] != 0  # the eight flags of a row as one word
    else:
        on = np.asarray(flags[s].any(axis=1))
    return on


def _judge(
    table: RuleTable, state: CoreState, new: CoreState, s: I64, t: I64, v: npt.NDArray[np.float64]
) -> tuple[list[Part], I64]:
    """`judge_levels` of every reading given. Works column first: (level columns x readings)."""
    cols = table.columns
    n = s.shape[0]
    start = segment_starts(s)
    starts = np.flatnonzero(start)
    ends = np.flatnonzero(segment_ends(start))
    seed_at, end_at = _flat(s[starts], cols).T, _flat(s[ends], cols).T
    up = cols < SLOTS
    thr, rec = np.take(table.c_threshold, s, axis=1), np.take(table.c_recover, s, axis=1)
    vv = v[None, :]
    if up.all():
        on, off = vv >= thr, vv < rec
    else:
        upc = up[:, None]
        on = np.where(upc, vv >= thr, vv <= thr)
        off = np.where(upc, vv < rec, vv > rec)
    seed_raw = np.take(state.raw.reshape(-1), seed_at)
    raw = _fill(on | off, on, seed_raw, starts)
    if table.has_delays:
        prev = np.empty_like(raw)
        prev[:, 1:] = raw[:, :-1]
        _put(prev, starts, seed_raw)
        change = raw != prev
        rsrc = _last(change, starts)
        from_state = ~change.reshape(-1)[rsrc]
        rsrc -= (np.arange(cols.shape[0]) * n)[:, None]  # the reading, not the flat index
        seg = np.cumsum(start) - 1
        seed_rs = np.take(np.take(state.run_start.reshape(-1), seed_at), seg, axis=1)
        seed_rc = np.take(np.take(state.run_count.reshape(-1), seed_at), seg, axis=1)
        run_start = np.where(from_state, seed_rs, t[rsrc])
        length = np.arange(n) - rsrc + 1
        count = np.minimum(np.where(from_state, seed_rc.astype(np.int64) + length, length), RUN_CAP)
        delay = np.where(
            raw, np.take(table.c_on_delay, s, axis=1), np.take(table.c_off_delay, s, axis=1)
        )
        need = np.where(
            raw, np.take(table.c_on_samples, s, axis=1), np.take(table.c_off_samples, s, axis=1)
        )
        qualified = (t[None, :] - run_start >= delay) & (count >= need)
        act = _fill(qualified, raw, np.take(state.active.reshape(-1), seed_at), starts)
        new.run_start.reshape(-1)[end_at] = np.take(run_start, ends, axis=1)
        new.run_count.reshape(-1)[end_at] = np.take(count, ends, axis=1).astype(np.uint16)
    else:
        act = raw
    new.raw.reshape(-1)[end_at] = np.take(raw, ends, axis=1)
    new.active.reshape(-1)[end_at] = np.take(act, ends, axis=1)
    numbers = np.where(act, (cols % SLOTS + 1).astype(np.int8)[:, None], np.int8(0))
    ss, se = s[starts], s[ends]
    parts: list[Part] = []
    above: I64 = np.zeros(n, dtype=np.int64)
    for side in (0, 1):
        mask = up if side == ABOVE else ~up
        if not mask.any():
            continue
        level = (numbers if mask.all() else numbers[mask]).max(axis=0).astype(np.int64)
        before = np.empty_like(level)
        before[1:] = level[:-1]
        before[starts] = state.level[:, side][ss]
        rows = np.flatnonzero(level != before)
        parts.append((s[rows], t[rows], v[rows], side, before[rows], level[rows]))
        new.level[se, side] = level[ends]
        if side == ABOVE:
            above = level
    return parts, above
