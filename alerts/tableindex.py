"""The compiled indexes of a rule table, so that a small batch costs no pass over every sensor:
the sensors with a no-data timeout, the voting groups' members, the calm band of each sensor's
thresholds (`RuleTable.no_data_rows`, `vote_members`, `calm_below`...), and the trend rows of
the sensors with a rate of rise or an early warning (`RuleTable.trend_of`...). Split from
`alerts.table` (the code moved as it was); `alerts.rerun` indexes a sub-table with them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from alerts.kinds import SLOTS
from telemetry.config import EarlyWarningSpec, RateSpec

__all__ = ["calm_index", "no_data_index", "trend_flags", "trend_index", "vote_index"]


def no_data_index(no_data: npt.NDArray[np.int64]) -> dict[str, Any]:
    """`no_data_rows`, `no_data_timeout` and `no_data_least` of a table with these timeouts."""
    rows = np.flatnonzero(no_data > 0).astype(np.int64)
    k = rows.shape[0]
    dense = k > 0 and int(rows[-1]) - int(rows[0]) == k - 1
    span: npt.NDArray[np.int64] | slice = slice(int(rows[0]), int(rows[-1]) + 1) if dense else rows
    timeout = no_data[rows]
    least = int(timeout.min()) if k else 0
    return {"no_data_rows": span, "no_data_timeout": timeout, "no_data_least": least}


def vote_index(group_of: npt.NDArray[np.int64]) -> dict[str, Any]:
    """`vote_members` and `vote_ptr` of a table whose sensors are in these groups (-1: none)."""
    members = np.flatnonzero(group_of >= 0)
    members = members[np.argsort(group_of[members], kind="stable")].astype(np.int64)
    counts = np.bincount(group_of[members], minlength=group_of.shape[0])
    ptr = np.zeros(group_of.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    groups = group_of[members]
    return {
        "vote_members": members,
        "vote_ptr": ptr,
        "vote_groups": groups,
        "vote_ids": np.unique(groups).astype(np.int64),
    }


def calm_index(threshold: npt.NDArray[np.float64]) -> dict[str, Any]:
    """`calm_below` and `calm_above` of a table with these thresholds ((n, 2 * SLOTS))."""
    up, down = threshold[:, :SLOTS], threshold[:, SLOTS:]
    below = np.where(np.isnan(up), np.inf, up).min(axis=1)
    above = np.where(np.isnan(down), -np.inf, down).max(axis=1)
    return {"calm_below": below, "calm_above": above}


def trend_index(
    rates: Sequence[RateSpec | None], early: Sequence[EarlyWarningSpec | None]
) -> dict[str, Any]:
    """The trend rows (`trend_of`, `trend_sensor`) of a table whose sensors have these rates of
    rise and early warnings, and the rows' windows and bounds (`rate_window`, `early_horizon`...:
    ms, NaN and 0 where a row has no rate of rise or no early warning; `has_rate`, `has_early`)."""
    n = len(rates)
    trend_sensor = np.array(
        [i for i in range(n) if rates[i] is not None or early[i] is not None], dtype=np.int64
    )
    trend_of = np.full(n, -1, dtype=np.int64)
    trend_of[trend_sensor] = np.arange(trend_sensor.shape[0])
    rate_specs = [rates[i] for i in trend_sensor.tolist()]
    early_specs = [early[i] for i in trend_sensor.tolist()]
    rate_on = np.array([r.per_min if r else np.nan for r in rate_specs], np.float64)
    early_window = np.array([round(e.window_s * 1000) if e else 0 for e in early_specs], np.int64)
    return {
        "trend_of": trend_of,
        "trend_sensor": trend_sensor,
        "rate_window": np.array(
            [round(r.window_s * 1000) if r else 0 for r in rate_specs], np.int64
        ),
        "rate_on": rate_on,
        "rate_off": np.array(
            [r.per_min * r.recover_factor if r else np.nan for r in rate_specs], np.float64
        ),
        "early_window": early_window,
        "early_horizon": np.array(
            [round(e.horizon_s * 1000) if e else 0 for e in early_specs], np.int64
        ),
        **trend_flags(rate_on, early_window),
    }


def trend_flags(
    rate_on: npt.NDArray[np.float64], early_window: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """`has_rate` and `has_early` of trend rows with these `rate_on` and `early_window`."""
    return {"has_rate": not np.isnan(rate_on).all(), "has_early": bool(early_window.any())}
