"""The re-runs of the lateness window (`alerts.lateness`): the rewound sensors' rules as a table of
their own, and their checkpoints as a state of their own, which the core judges again in
event-time order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from alerts.segments import ring_offsets
from alerts.state import CK_FIELDS, I64, NO_TS, CoreState
from alerts.table import RuleTable
from alerts.tableindex import no_data_index, trend_flags, vote_index

__all__ = ["checkpoint_state", "subset_table"]

_LATE_FIELDS = ("ring_ts", "ring_v", "ring_q", "ring_n", *(f"ck_{f}" for f in CK_FIELDS))


def subset_table(table: RuleTable, rows: I64) -> RuleTable:
    """The rules of `rows` (sensor indices, repeats allowed) as a table of their own, for the
    re-runs: no verification, no voting, no window. Only the arrays the passes read are cut
    (`levels`, `rates`, `early` stay the whole table's: they describe, they do not judge)."""
    trow = table.trend_of[rows]
    has = trow >= 0
    sel = trow[has]
    trend_of = np.full(rows.shape[0], -1, dtype=np.int64)
    trend_of[has] = np.arange(int(has.sum()))
    none = np.zeros(0, dtype=np.int64)
    return replace(
        table,
        threshold=table.threshold[rows],
        recover=table.recover[rows],
        tier=table.tier[rows],
        on_delay=table.on_delay[rows],
        off_delay=table.off_delay[rows],
        on_samples=table.on_samples[rows],
        off_samples=table.off_samples[rows],
        no_data=table.no_data[rows],
        has_rules=table.has_rules[rows],
        loses=table.loses[rows],
        watched=table.watched[rows],
        verify=(),
        verify_sensor=none,
        verify_pair_plan=none,
        verify_pair_feedback=none,
        verify_pair_ptr=np.zeros(1, dtype=np.int64),
        verify_grace=none,
        group_of=np.full(rows.shape[0], -1, dtype=np.int64),
        vote_level=np.zeros(rows.shape[0], dtype=np.int8),
        c_threshold=table.c_threshold[:, rows],
        c_recover=table.c_recover[:, rows],
        c_on_delay=table.c_on_delay[:, rows],
        c_off_delay=table.c_off_delay[:, rows],
        c_on_samples=table.c_on_samples[:, rows],
        c_off_samples=table.c_off_samples[:, rows],
        trend_of=trend_of,
        trend_sensor=np.flatnonzero(has).astype(np.int64),
        rate_window=table.rate_window[sel],
        rate_on=table.rate_on[sel],
        rate_off=table.rate_off[sel],
        early_window=table.early_window[sel],
        **trend_flags(table.rate_on[sel], table.early_window[sel]),
        early_horizon=table.early_horizon[sel],
        frozen_ms=table.frozen_ms[rows],
        frozen_band=table.frozen_band[rows],
        frozen_floor=table.frozen_floor[rows],
        maint_ms=table.maint_ms[rows],
        calib_ms=table.calib_ms[rows],
        has_calib=table.has_calib,
        fails_vote=np.zeros(rows.shape[0], dtype=np.bool_),
        counts_failed=False,
        lateness_ms=0,
        late_depth=0,
        rewinds=np.zeros(rows.shape[0], dtype=np.bool_),
        **no_data_index(table.no_data[rows]),
        **vote_index(np.full(rows.shape[0], -1, dtype=np.int64)),
        calm_below=table.calm_below[rows],
        calm_above=table.calm_above[rows],
    )


def checkpoint_state(table: RuleTable, state: CoreState, new: CoreState, rows: I64) -> CoreState:
    """The checkpoints of `rows` (sensor indices) as a state of their own. Their trend buffers
    are the readings at or before each checkpoint in the buffers of `state` (before the batch)."""
    k = rows.shape[0]
    trow = table.trend_of[rows]
    trow = trow[trow >= 0]
    keep = table.trend_keep
    hist_ts = np.zeros((trow.shape[0], keep), dtype=np.int32)
    hist_v = np.full((trow.shape[0], keep), np.nan)
    hist_n = np.zeros(trow.shape[0], dtype=np.int16)
    hist_base = np.zeros(trow.shape[0], dtype=np.int64)
    if trow.shape[0]:
        ck_ts = new.ck_last_ts[rows[table.trend_of[rows] >= 0]]
        col = np.arange(keep)
        src_ts, src_v, hn = state.aligned(trow)
        valid = (col[None, :] >= (keep - hn)[:, None]) & (src_ts <= ck_ts[:, None])
        cnt = valid.sum(axis=1)
        # the valid readings are the oldest kept ones: shift them to the right end
        idx = col[None, :] - (hn - cnt)[:, None]
        ok = col[None, :] >= (keep - cnt)[:, None]
        idx = np.clip(idx, 0, keep - 1)
        # based at each row's newest kept reading (right-aligned: the last column), if any
        hist_base = np.where(cnt > 0, np.take_along_axis(src_ts, idx, axis=1)[:, -1], 0)
        hist_ts = np.where(
            ok, ring_offsets(np.take_along_axis(src_ts, idx, axis=1), hist_base[:, None]), 0
        ).astype(np.int32)
        hist_v = np.where(ok, np.take_along_axis(src_v, idx, axis=1), np.nan)
        hist_n = cnt.astype(np.int16)
    fresh = CoreState.empty(0)
    late: dict[str, Any] = {f: getattr(fresh, f) for f in _LATE_FIELDS}
    return CoreState(
        new.ck_raw[rows],
        new.ck_active[rows],
        new.ck_run_start[rows],
        new.ck_run_count[rows],
        new.ck_level[rows],
        new.ck_last_ts[rows],
        new.ck_last_data[rows],
        new.ck_last_value[rows],
        np.full(k, NO_TS, dtype=np.int64),
        np.zeros(k, dtype=np.bool_),
        hist_ts,
        hist_v,
        hist_n,
        np.zeros(trow.shape[0], dtype=np.int16),  # right-aligned
        # the rewind judges no action; its silence needs the hub's clock too (`alerts.nodata`)
        last_arrival=new.last_arrival[rows],
        frozen_since=new.ck_frozen_since[rows],
        maint_since=new.ck_maint_since[rows],
        hist_base=hist_base,
        calib_at=new.ck_calib_at[rows],
        **late,
    )
