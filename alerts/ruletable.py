"""The numpy rule table (`RuleTable`): the sensors' rules, compiled once per configuration
(`alerts.table.compile_table`), as arrays the core judges a batch with, and the texts of each
level. Split from `alerts.table`, which compiles it and names it as before; the code moved as
it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from alerts.actiontexts import (
    SIDE_LEVELS,
    calibration_level,
    early_level,
    frozen_level,
    overdue_level,
    rate_level,
)
from alerts.kinds import (
    ABOVE,
    ACTION,
    BELOW,
    CALIBRATION_DUE,
    EARLY,
    FAULT,
    FROZEN,
    MAINTENANCE,
    RATE,
)
from alerts.verifyplan import VerifyPlan
from telemetry.config import (
    CalibrationDueSpec,
    EarlyWarningSpec,
    FrozenSpec,
    LevelSpec,
    MaintenanceSpec,
    RateSpec,
)

__all__ = ["RuleTable"]


@dataclass(frozen=True, slots=True, eq=False)
class RuleTable:
    """Per sensor and slot: threshold, recovery threshold, tier, delays; per sensor: timeouts.

    Slots 0-3 are the levels above (rising thresholds), 4-7 the levels below (falling thresholds).
    Unused slots hold NaN, which never decides anything.
    """

    threshold: npt.NDArray[np.float64]  # (n, 8)
    recover: npt.NDArray[np.float64]  # (n, 8)
    tier: npt.NDArray[np.uint8]  # (n, 8) index into TIERS
    on_delay: npt.NDArray[np.int64]  # (n, 8) ms of event time
    off_delay: npt.NDArray[np.int64]  # (n, 8)
    on_samples: npt.NDArray[np.int32]  # (n, 8)
    off_samples: npt.NDArray[np.int32]  # (n, 8)
    no_data: npt.NDArray[np.int64]  # (n,) ms, 0 = no timeout
    has_rules: npt.NDArray[np.bool_]  # (n,) the sensor has process levels
    watched: npt.NDArray[np.bool_]  # (n,) its readings are looked at at all
    verify: tuple[VerifyPlan, ...]
    verify_sensor: npt.NDArray[np.int64]  # (plans,) the demanding sensor of each plan
    verify_grace: npt.NDArray[np.int64]  # (plans,) ms
    # (plan, feedback sensor) pairs, a plan's in the order of its `feedbacks`: those of plan k are
    # verify_pair_*[verify_pair_ptr[k]:verify_pair_ptr[k + 1]]
    verify_pair_plan: npt.NDArray[np.int64]
    verify_pair_feedback: npt.NDArray[np.int64]
    verify_pair_ptr: npt.NDArray[np.int64]  # (plans + 1,)
    group_of: npt.NDArray[np.int64]  # (n,) the voting group (a sensor index) of a member, or -1
    vote_level: npt.NDArray[np.int8]  # (n,) of a group: the members' level that counts
    levels: tuple[tuple[tuple[LevelSpec, ...], tuple[LevelSpec, ...]], ...]  # (above, below)
    columns: npt.NDArray[np.intp]  # the slots any sensor uses (the others are skipped)
    has_delays: bool
    # the per-slot tables restricted to `columns`, column first ((len(columns), n), each column
    # contiguous): the levels are judged a column at a time over the readings
    c_threshold: npt.NDArray[np.float64]
    c_recover: npt.NDArray[np.float64]
    c_on_delay: npt.NDArray[np.int64]
    c_off_delay: npt.NDArray[np.int64]
    c_on_samples: npt.NDArray[np.int32]
    c_off_samples: npt.NDArray[np.int32]
    # rate of rise and early warning ("trends"): per trend row, in sensor order
    trend_of: npt.NDArray[np.int64]  # (n,) the sensor's trend row, or -1
    trend_sensor: npt.NDArray[np.int64]  # (m,) the sensor of each trend row
    rate_window: npt.NDArray[np.int64]  # (m,) ms, 0 = no rate of rise
    rate_on: npt.NDArray[np.float64]  # (m,) per minute; NaN = no rate of rise
    rate_off: npt.NDArray[np.float64]  # (m,) per minute (rate_on * recover_factor)
    early_window: npt.NDArray[np.int64]  # (m,) ms, 0 = no early warning
    early_horizon: npt.NDArray[np.int64]  # (m,) ms
    rates: tuple[RateSpec | None, ...]  # (n,)
    early: tuple[EarlyWarningSpec | None, ...]  # (n,)
    trend_depth: int  # readings a trend window may hold (TREND_DEPTH)
    # the lateness window (alerts.lateness); 0 ms: none, a reading at or before its sensor's
    # last processed time is late, as without a window
    lateness_ms: int
    late_depth: int  # readings kept per sensor to rewind (LATE_DEPTH)
    # (n,) sensors with levels, a no-data time or a feedback role that are not voting groups:
    # those the lateness window rewinds
    rewinds: npt.NDArray[np.bool_]
    trend_keep: int  # columns of the trend buffers: trend_depth, + late_depth with a window
    # compiled indexes of the above, so that a small batch costs no pass over every sensor
    no_data_rows: npt.NDArray[np.int64] | slice  # sensors with a no-data timeout (a range: a
    # slice, for views instead of gathers)
    no_data_timeout: npt.NDArray[np.int64]  # their timeouts (ms), in that order
    # the members of voting groups by group: those of group g (a sensor index) are
    # vote_members[vote_ptr[g]:vote_ptr[g + 1]]
    vote_members: npt.NDArray[np.int64]
    vote_ptr: npt.NDArray[np.int64]  # (n + 1,)
    vote_groups: npt.NDArray[np.int64]  # the group of each of `vote_members`
    vote_ids: npt.NDArray[np.int64]  # the groups (sensor indices), ascending
    # a reading below every level above and above every level below its sensor's (no level
    # turns on) is calm: of a sensor with no level on, it changes nothing but the run counts
    calm_below: npt.NDArray[np.float64]  # (n,) the lowest threshold above (inf: none)
    calm_above: npt.NDArray[np.float64]  # (n,) the highest threshold below (-inf: none)
    # frozen value (alerts.frozen): per sensor the time its value must stay within the band of
    # the reading before to raise 'frozen' (ms of event time, 0: no check), the band, the specs
    frozen_ms: npt.NDArray[np.int64]  # (n,)
    frozen_band: npt.NDArray[np.float64]  # (n,)
    frozen_floor: npt.NDArray[np.float64]  # (n,) readings below it are never frozen (-inf)
    frozen: tuple[FrozenSpec | None, ...]  # (n,)
    has_frozen: bool  # any sensor has the check
    # maintenance held too long (alerts.maintenance): per sensor the time its readings may say
    # calibration or manual (ms of event time, 0: no limit), the specs
    maint_ms: npt.NDArray[np.int64]  # (n,)
    maintenance: tuple[MaintenanceSpec | None, ...]  # (n,)
    has_maint: bool  # any sensor has a limit
    # (n,) the members of the voting groups that count a failed member as at the level
    # (`count_failed`; alerts.vote): their fault and no-data sides vote too
    fails_vote: npt.NDArray[np.bool_]
    counts_failed: bool  # any group does
    # (n,) the sensors judged for no data (comm loss, gaps, silence): those with levels or a
    # no-data time, and the feedbacks of verifications (a power feed, a crane's hoist circuit:
    # silent, they would go unsaid until a demand failed on them, helper-103)
    loses: npt.NDArray[np.bool_]
    # the action_failed alarm's text of the sensors whose verification has one of its own
    verify_actions: Mapping[int, str] = field(default_factory=dict)
    # a sensor fault's action where the sensor's kind has one of its own (`alerts.actiontexts`)
    fault_actions: Mapping[int, str] = field(default_factory=dict)
    # (plans,) the side each plan demands on (ABOVE, or BELOW for a fan's stop)
    verify_side: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    # (plans,) the plans whose met action must hold while the demand lasts (`VerifySpec.hold`)
    verify_hold: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    has_hold: bool = False  # any plan holds (the state then keeps `CoreState.broke`)
    # (plans,) each plan's bound and whether the feedback must read below it (`VerifyPlan`)
    verify_bound: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    verify_below: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    # (plans,) the plans a sensor fault demands too (故障闭锁, `VerifySpec.on_fault`)
    verify_on_fault: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    has_on_fault: bool = False  # any plan does
    # the action_failed alarm's text when a sensor fault's demand failed, by sensor
    fault_lock_actions: Mapping[int, str] = field(default_factory=dict)
    # (sensor,): a held action's break (`VerifySpec.hold_action` or by kind)
    broken_actions: Mapping[int, str] = field(default_factory=dict)
    # calibration due (alerts.calibration): per sensor its interval (ms of event time, 0: none)
    # and the specs (the defaults: a table of no sensor)
    calib_ms: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    calibration: tuple[CalibrationDueSpec | None, ...] = ()
    has_calib: bool = False
    # the shortest of `no_data_timeout` (ms; 0: not known, as a table built by hand): a sensor
    # whose last data is newer than `now` less it is not silent (`alerts.nodata.silence` reads
    # the others' timeouts only)
    no_data_least: int = 0
    # any trend row has a rate of rise (`rate_on` not all NaN), an early warning (`early_window`
    # not all 0): so that a batch does not scan every row to know (True: scan, a table by hand)
    has_rate: bool = True
    has_early: bool = True

    @property
    def size(self) -> int:
        return int(self.has_rules.shape[0])

    @property
    def trends(self) -> int:
        """Sensors with a rate of rise or an early warning (rows of the trend buffers)."""
        return int(self.trend_sensor.shape[0])

    def level(self, sensor: int, side: int, number: int) -> LevelSpec | None:
        """The LevelSpec of process level `number` (1-based) on `side`, None for level 0."""
        if number <= 0 or side > BELOW:
            return None
        return self.levels[sensor][side][number - 1]

    def describe(self, sensor: int, side: int, number: int) -> tuple[str, str, str]:
        """(level name, tier, action) of level `number` on `side`; level 0 is 'normal'."""
        if number <= 0:
            return "normal", "none", ""
        if side == ACTION:
            name, tier, action = SIDE_LEVELS[ACTION]
            return name, tier, self.verify_actions.get(sensor, action)
        if side == FAULT:
            name, tier, action = SIDE_LEVELS[FAULT]
            return name, tier, self.fault_actions.get(sensor, action)
        if side in SIDE_LEVELS:
            return SIDE_LEVELS[side]
        if side == RATE:
            return rate_level(self.rates[sensor])
        if side == FROZEN:
            return frozen_level(self.frozen[sensor])
        if side == MAINTENANCE:
            return overdue_level(self.maintenance[sensor])
        if side == CALIBRATION_DUE:
            return calibration_level(self.calibration[sensor])
        if side == EARLY:
            return early_level(self.levels[sensor][ABOVE], self.early[sensor], number)
        spec = self.levels[sensor][side][number - 1]
        return spec.name, spec.tier, spec.action
