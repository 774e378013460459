"""The rate of rise and the early warning of `alerts.reference`'s `ReferenceCore`, one judged
reading at a time (the semantics are in `alerts.trend`); `trend_slope`, the early warning's slope,
is the alarm book's too (`alerts.alarms` says the time to the level). Split from
`alerts.reference`, the code moved as it was. Not for production use, but for `trend_slope`.
"""

from __future__ import annotations

import math

from alerts.table import SLOTS, RuleTable

__all__ = ["trend_levels", "trend_slope"]


def trend_slope(win: list[tuple[int, float]], t: int) -> float:
    """The early warning's least-squares slope of value over event time (per ms) of the window's
    readings `win` (oldest first), x = t_i - t: means, then centred sums, each added oldest
    first from 0.0, as `alerts.trend` adds them; NaN with fewer than two readings or no time
    spread."""
    if len(win) < 2:
        return math.nan
    xs = [float(ti - t) for ti, _ in win]
    sx = sv = 0.0
    for x, (_, vi) in zip(xs, win, strict=True):
        sx += x
        sv += vi
    mx, mv = sx / len(win), sv / len(win)
    sxx = sxy = 0.0
    for x, (_, vi) in zip(xs, win, strict=True):
        dx = x - mx
        sxx += dx * dx
        sxy += dx * (vi - mv)
    return sxy / sxx if sxx > 0 else math.nan


def trend_levels(
    table: RuleTable, s: int, hist: list[tuple[int, float]], t: int, v: float, level: int
) -> tuple[int | None, int | None]:
    """The rate of rise's and the early warning's levels after sensor `s`'s judged reading
    (`t`, `v`), added to its trend readings `hist` (oldest first, kept to `table.trend_keep`),
    its level above being `level`; None where the reading sets no level."""
    row = int(table.trend_of[s])
    hist.append((t, v))
    del hist[: -table.trend_keep]
    recent = hist[-table.trend_depth :]
    rate: int | None = None
    rate_on = float(table.rate_on[row])
    if not math.isnan(rate_on):
        win = [(ti, vi) for ti, vi in recent if ti >= t - int(table.rate_window[row])]
        if len(win) >= 2:
            t0, v0 = win[0]
            rise = (v - v0) * 60000.0 / (t - t0)
            if rise > rate_on:
                rate = 1
            elif rise < float(table.rate_off[row]):
                rate = 0
    window = int(table.early_window[row])
    if window <= 0:
        return rate, None
    win = [(ti, vi) for ti, vi in recent if ti >= t - window]
    early = 0
    slope = trend_slope(win, t)
    thr = float(table.threshold[s, level]) if level < SLOTS else math.nan
    if slope > 0 and not math.isnan(thr):
        eta = (thr - v) / slope
        if 0 < eta < int(table.early_horizon[row]):
            early = level + 1
    return rate, early
