"""Compile the sensors' rules into numpy rule tables (once per configuration). The table itself
is `alerts.ruletable.RuleTable`, named here too."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alerts.actiontexts import (
    broken_action,
    fault_action,
    fault_lock_action,
    unconfirmed,
)
from alerts.kinds import (
    ABOVE,
    ACTION,
    ALARM_KIND_NAMES,
    ALARM_KIND_SIDES,
    BELOW,
    CALIBRATION_DUE,
    DATA_LOST,
    EARLY,
    FAULT,
    FLEET_KINDS,
    FLEET_SIDE0,
    FROZEN,
    HIGH,
    LOW,
    MAINTENANCE,
    NO_DATA,
    RATE,
    SIDE_NAMES,
    SIDES,
    SLOTS,
    TERMINAL_KINDS,
    TIER_RANK,
    TIERS,
    kind_name,
)
from alerts.ruletable import RuleTable
from alerts.tableindex import calm_index, no_data_index, trend_index, vote_index
from alerts.verifyplan import compile_plan, plan_index
from telemetry.registry import SensorInfo

__all__ = [
    "ABOVE",
    "ACTION",
    "ALARM_KIND_NAMES",
    "ALARM_KIND_SIDES",
    "BELOW",
    "CALIBRATION_DUE",
    "DATA_LOST",
    "EARLY",
    "FAULT",
    "FLEET_KINDS",
    "FLEET_SIDE0",
    "FROZEN",
    "HIGH",
    "LATE_DEPTH",
    "LOW",
    "MAINTENANCE",
    "NO_DATA",
    "RATE",
    "RUN_CAP",
    "SIDES",
    "SIDE_NAMES",
    "SLOTS",
    "TERMINAL_KINDS",
    "TIERS",
    "TIER_RANK",
    "TREND_DEPTH",
    "RuleTable",
    "compile_table",
    "kind_name",
]

RUN_CAP = 65535  # run lengths are counted up to this (more than any on/off_samples)
_TREND_WINDOW_MAX_MS = 3_600_000  # a rate's or early warning's window_s: at most 3600
TREND_DEPTH = 32  # judged readings kept per sensor with a rate of rise or an early warning
LATE_DEPTH = 8  # readings kept per sensor for the lateness window (alerts.lateness)


def _ms(seconds: float | None) -> int:
    return 0 if seconds is None else round(seconds * 1000)


def compile_table(
    sensors: Sequence[SensorInfo],
    trend_depth: int = TREND_DEPTH,
    *,
    lateness_ms: int = 0,
    late_depth: int = LATE_DEPTH,
) -> RuleTable:
    """Compile once per configuration; `trend_depth` (readings a trend window may hold) is for
    tests. `lateness_ms` is the lateness window (0: none) and `late_depth` the readings kept per
    sensor to rewind within it (see `alerts.lateness`)."""
    if lateness_ms < 0 or late_depth < 1:
        raise ValueError("the lateness window needs lateness_ms >= 0 and late_depth >= 1")
    if lateness_ms + _TREND_WINDOW_MAX_MS >= 2**31:
        # the trend buffers keep times as int32 offsets from a recent base (CoreState.hist_ts):
        # a window, rewound by the lateness window, must not reach past 24 days before it
        raise ValueError("the lateness window must be shorter than 23 days")
    n = len(sensors)
    threshold = np.full((n, 2 * SLOTS), np.nan)
    recover = np.full((n, 2 * SLOTS), np.nan)
    tier = np.zeros((n, 2 * SLOTS), dtype=np.uint8)
    on_delay = np.zeros((n, 2 * SLOTS), dtype=np.int64)
    off_delay = np.zeros((n, 2 * SLOTS), dtype=np.int64)
    on_samples = np.ones((n, 2 * SLOTS), dtype=np.int32)
    off_samples = np.ones((n, 2 * SLOTS), dtype=np.int32)
    no_data = np.zeros(n, dtype=np.int64)
    group_of = np.full(n, -1, dtype=np.int64)
    vote_level = np.zeros(n, dtype=np.int8)
    by_id = {info.id: i for i, info in enumerate(sensors)}
    levels = []
    plans = []
    verify_actions: dict[int, str] = {}
    fault_lock_actions: dict[int, str] = {}
    broken_actions: dict[int, str] = {}
    for i, info in enumerate(sensors):
        above = tuple(lv for lv in info.levels if lv.above is not None)
        below = tuple(lv for lv in info.levels if lv.below is not None)
        for base, side in ((0, above), (SLOTS, below)):
            for j, lv in enumerate(side):
                threshold[i, base + j] = lv.above if lv.above is not None else lv.below
                recover[i, base + j] = lv.recover
                tier[i, base + j] = TIERS.index(lv.tier)
                on_delay[i, base + j] = _ms(lv.on_delay_s)
                off_delay[i, base + j] = _ms(lv.off_delay_s)
                on_samples[i, base + j] = lv.on_samples
                off_samples[i, base + j] = lv.off_samples
        levels.append((above, below))
        no_data[i] = _ms(info.no_data_s)
        for member in info.members:
            group_of[member] = i
        vote_level[i] = info.vote_level
        spec = info.verify
        plan = None if spec is None else compile_plan(i, spec, above, below, by_id)
        if spec is not None and plan is not None:
            plans.append(plan)
            feeds = (spec.sensor, *spec.also)
            verify_actions[i] = spec.action or unconfirmed(feeds, spec.within_s, info.kind)
            if spec.on_fault:
                fault_lock_actions[i] = spec.action or fault_lock_action(info.kind)
            if spec.hold:
                broken_actions[i] = spec.hold_action or broken_action(info.kind, feeds)
    has_rules = ~np.isnan(threshold).all(axis=1)
    rates = tuple(info.rate if has_rules[i] else None for i, info in enumerate(sensors))
    early = tuple(info.early_warning if has_rules[i] else None for i, info in enumerate(sensors))
    frozen = tuple(info.frozen if has_rules[i] else None for i, info in enumerate(sensors))
    frozen_ms = np.array([_ms(f.after_s) if f else 0 for f in frozen], dtype=np.int64)
    # every sensor is looked at: a sensor without levels still raises its faults (a tower
    # crane's height encoder, a power-feed sensor) ...
    watched = np.ones(n, dtype=np.bool_)
    # ... but only one with levels, a no-data time or a feedback role is worth the lateness
    # window's rewinds (a late reading of the others could change only a fault: counted late)
    loses = has_rules | (no_data > 0)
    for plan in plans:
        loses[list(plan.feedbacks)] = True
    rewound = loses.copy()
    # a limit on calibration and manual time: for the sensors judged at all (levels, a no-data
    # time, a feedback role: a power feed forced on is a bypass too)
    maintenance = tuple(info.maintenance if loses[i] else None for i, info in enumerate(sensors))
    maint_ms = np.array([_ms(m.after_s) if m else 0 for m in maintenance], dtype=np.int64)
    calibration = tuple(
        info.calibration_due if loses[i] else None for i, info in enumerate(sensors)
    )
    calib_ms = np.array([_ms(c.every_days * 86400) if c else 0 for c in calibration], np.int64)
    has_calib = bool(calib_ms.any())
    counting = np.array([info.count_failed for info in sensors], dtype=np.bool_)
    fails_vote = (group_of >= 0) & counting[np.maximum(group_of, 0)]
    columns = np.flatnonzero(~np.isnan(threshold).all(axis=0))
    has_delays = bool(
        (on_delay > 0).any()
        or (off_delay > 0).any()
        or (on_samples > 1).any()
        or (off_samples > 1).any()
    )
    return RuleTable(
        threshold,
        recover,
        tier,
        on_delay,
        off_delay,
        on_samples,
        off_samples,
        no_data,
        has_rules,
        watched,
        group_of=group_of,
        vote_level=vote_level,
        levels=tuple(levels),
        columns=columns,
        has_delays=has_delays,
        **plan_index(plans),
        c_threshold=np.ascontiguousarray(threshold[:, columns].T),
        c_recover=np.ascontiguousarray(recover[:, columns].T),
        c_on_delay=np.ascontiguousarray(on_delay[:, columns].T),
        c_off_delay=np.ascontiguousarray(off_delay[:, columns].T),
        c_on_samples=np.ascontiguousarray(on_samples[:, columns].T),
        c_off_samples=np.ascontiguousarray(off_samples[:, columns].T),
        **trend_index(rates, early),
        rates=rates,
        early=early,
        trend_depth=trend_depth,
        lateness_ms=lateness_ms,
        late_depth=late_depth if lateness_ms > 0 else 0,
        rewinds=rewound & ~np.isin(np.arange(n), group_of[group_of >= 0]),
        trend_keep=trend_depth + (late_depth if lateness_ms > 0 else 0),
        **no_data_index(no_data),
        **vote_index(group_of),
        **calm_index(threshold),
        frozen_ms=frozen_ms,
        frozen_band=np.array([f.band if f else 0.0 for f in frozen], dtype=np.float64),
        frozen_floor=np.array(
            [f.ignore_below if f and f.ignore_below is not None else -np.inf for f in frozen],
            dtype=np.float64,
        ),
        frozen=frozen,
        has_frozen=bool(frozen_ms.any()),
        maint_ms=maint_ms,
        maintenance=maintenance,
        has_maint=bool(maint_ms.any()),
        fails_vote=fails_vote,
        counts_failed=bool(fails_vote.any()),
        loses=loses,
        verify_actions=verify_actions,
        fault_lock_actions=fault_lock_actions,
        broken_actions=broken_actions,
        fault_actions={
            i: text
            for i, info in enumerate(sensors)
            if (text := fault_action(info.kind, info.rule)) is not None
        },
        calib_ms=calib_ms,
        calibration=calibration,
        has_calib=has_calib,
    )
