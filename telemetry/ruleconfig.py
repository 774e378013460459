"""The alarm rules of the configuration format: levels with hysteresis and delays, rate of rise,
early warning, verified protective actions, suppression by design, and the rule packs that name
rules for sensors to refer to (``pack.rule``). Pure models; `telemetry.config` re-exports them.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from telemetry.configbase import Frozen, Ident, Tier, some

__all__ = [
    "CalibrationDueSpec",
    "EarlyWarningSpec",
    "FrozenSpec",
    "LevelSpec",
    "LockTestSpec",
    "MaintenanceSpec",
    "RateSpec",
    "RulePack",
    "RuleSpec",
    "SensorKind",
    "SuppressSpec",
    "VerifySpec",
    "check_levels",
]


class LevelSpec(Frozen):
    """One alarm level: raised when the value reaches `above` (or falls to `below`), cleared only
    when it returns past `recover` (hysteresis)."""

    name: Ident
    tier: Tier
    above: float | None = None
    below: float | None = None
    recover: float
    action: str = Field(default="", max_length=200, description="protective action, e.g. power cut")
    note: str = Field(
        default="", max_length=500, description="source and confidence of the numbers"
    )
    on_delay_s: float = Field(
        default=0.0, ge=0, le=86400, description="the condition must hold this long (event time)"
    )
    off_delay_s: float = Field(
        default=0.0, ge=0, le=86400, description="the recovery must hold this long (event time)"
    )
    on_samples: int = Field(default=1, ge=1, le=1000, description="N judged readings in a row")
    off_samples: int = Field(default=1, ge=1, le=1000, description="N recovered readings in a row")

    @model_validator(mode="after")
    def _one_side(self) -> Self:
        if (self.above is None) == (self.below is None):
            raise ValueError("a level sets exactly one of 'above' and 'below'")
        if self.above is not None and self.recover > self.above:
            raise ValueError(f"recover {self.recover} must be <= above {self.above}")
        if self.below is not None and self.recover < self.below:
            raise ValueError(f"recover {self.recover} must be >= below {self.below}")
        return self


def check_levels(levels: tuple[LevelSpec, ...]) -> None:
    names = [lv.name for lv in levels]
    if len(set(names)) != len(names):
        raise ValueError("level names must be unique within a rule")
    highs = [lv.above for lv in levels if lv.above is not None]
    lows = [lv.below for lv in levels if lv.below is not None]
    if len(highs) > 4 or len(lows) > 4:
        raise ValueError("at most four levels above and four below")
    # equal thresholds are allowed: coal-mine return airways alarm and cut power at the same 1.0 %
    if highs != sorted(highs):
        raise ValueError("levels above must be listed with rising thresholds")
    if lows != sorted(lows, reverse=True):
        raise ValueError("levels below must be listed with falling thresholds")
    if highs and lows and highs[0] <= lows[0]:
        raise ValueError(
            f"the lowest level above ({highs[0]:g}) must be higher than the highest level below "
            f"({lows[0]:g}): a value between them would be too high and too low at once"
        )


LOCK_TEST_MAX_DAYS = 366  # a lock-test interval's most (a year)


class LockTestSpec(Frozen):
    """How often the lock-out a plan verifies must be tested (甲烷电闭锁 / 风电闭锁 every 15 days,
    every 6 months where the test may stop the local fan: AQ 1029 revision, DOMAIN 1.3): a
    'lock_test_overdue' alarm on the plan's sensor when its last passed test (recorded through the
    API, or a protective action confirmed in time) is `every_days` old (docs/rules.md)."""

    every_days: float = Field(
        description="test the lock-out at least this often (days on the hub's clock): 15 for "
        "甲烷电闭锁 and 风电闭锁, 183 (6 months) where the test may stop the local fan"
    )

    @field_validator("every_days")
    @classmethod
    def _sane(cls, days: float) -> float:
        if not 0 < days <= LOCK_TEST_MAX_DAYS:
            raise ValueError(
                f"lock_test every_days {days:g}: give the interval in days, more than 0 and at "
                f"most {LOCK_TEST_MAX_DAYS} (a year); e.g. 15 (甲烷电闭锁, 风电闭锁) or 183 "
                "(where the test may stop the local fan); leave lock_test out for no check"
            )
        return days


class VerifySpec(Frozen):
    """A protective action to verify: when the sensor reaches `level` (default: its highest level
    above, or its lowest level below when it has none above), the feedback sensor (and each of
    `also`) must read below `expect_below` (or above `expect_above`) within `within_s` of the
    event time, else an 'action_failed' alarm is raised (馈电异常 for a power cut; 风电闭锁, a
    local fan's stop that must cut the heading's power, on a level below; for a crane, the
    limiter that did not act). `action` says what it means and what to do. With `hold`, the
    confirmed action is watched while the level lasts; with `on_fault`, a sensor fault demands
    it too (故障闭锁; docs/rules.md)."""

    sensor: Ident = Field(description="id of the feedback sensor, e.g. the face power feed")
    also: tuple[Ident, ...] = Field(
        default=(),
        max_length=7,
        repr=False,  # (in the core's signature only when set: alerts.reload.core_signature)
        description="more feedback sensors that must all confirm the same action, e.g. the "
        "feeds of the intake and the return airway of a power-cut scope, or a crane's "
        "hoisting-up and trolley-out circuits",
    )
    level: Ident | None = None
    expect_below: float | None = None
    expect_above: float | None = None
    within_s: float = Field(gt=0, le=3600)
    action: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="the failure's text for the operator, shown as the 'action_failed' alarm's "
        "action (default: 'the protective action was not confirmed: act by hand')",
    )
    grace_s: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="with no feedback reading past the deadline, wait this long on the hub's "
        "clock for one in transit before declaring the failure",
    )

    hold: bool = Field(
        default=False,
        repr=False,  # (in the core's signature only when set: alerts.reload.core_signature)
        description="once confirmed, the action must hold while the level lasts: a feedback "
        "reading past the bound again (a face re-energised during the power cut, a crane lifting "
        "during the wind stop) raises 'action_failed' once a reading of the sensor at or after "
        "it still shows the level, or measures nothing (fault, calibration, manual; not comm "
        "loss)",
    )
    on_fault: bool = Field(
        default=False,
        repr=False,  # (in the core's signature only when set: alerts.reload.core_signature)
        description="故障闭锁 (fault lock-out): a sensor-fault reading of the sensor demands the "
        "action too, from its event time, as the level does; the demand lasts while the sensor "
        "is in fault and ends at its next reading with a value unless that reading is at the "
        "level (comm-loss and calibration readings neither start nor end it)",
    )

    hold_action: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        repr=False,  # a text of the alarm's, not the core's
        description="with hold: the failure's text when the confirmed action broke (power back "
        "on during the cut), where `action` is a failure to act in time (default: a text that "
        "names the feedbacks and says to undo it at once)",
    )

    lock_test: LockTestSpec | None = Field(
        default=None,
        repr=False,  # not the core's: the lock-test check (alerts.locktests) reads it
        description="the lock-out test interval of this plan (its sensor's rule's when not "
        "set): a 'lock_test_overdue' alarm when no passed test is recorded for it that long",
    )

    @model_validator(mode="after")
    def _one_bound(self) -> Self:
        if self.hold_action is not None and not self.hold:
            raise ValueError("verify's 'hold_action' is the text of a break: it needs 'hold: true'")
        if (self.expect_below is None) == (self.expect_above is None):
            raise ValueError("verify sets exactly one of 'expect_below' and 'expect_above'")
        if len({self.sensor, *self.also}) != 1 + len(self.also):
            raise ValueError("verify names each feedback sensor once ('sensor' and 'also')")
        return self


class RateSpec(Frozen):
    """Rate of rise: a 'rate' alarm when the value rose by more than `per_min` per minute over the
    last `window_s` of event time (newest reading against the oldest in the window); it clears
    when the rise falls below `per_min * recover_factor` (hysteresis)."""

    per_min: float = Field(gt=0, description="rise per minute, in the sensor's unit")
    window_s: float = Field(gt=0, le=3600)
    tier: Tier = "yellow"
    recover_factor: float = Field(
        default=0.8, gt=0, le=1, description="clear below per_min * recover_factor"
    )
    action: str = Field(default="", max_length=200)


class EarlyWarningSpec(Frozen):
    """Early warning (blue tier): the least-squares slope over the last `window_s` of event time
    projects when the value reaches the next level above; under `horizon_s`, warn."""

    window_s: float = Field(gt=0, le=3600)
    horizon_s: float = Field(gt=0, le=86400)


class FrozenSpec(Frozen):
    """Frozen value (a stuck, covered or disconnected transmitter; DOMAIN 1.5, 3, 6): a 'frozen'
    alarm when the sensor's judged readings have not moved by more than `band` from one to the
    next for `after_s` of event time; it clears at the first reading that moves. Only for
    sensors whose value always moves in service: a gas sensor in clean air may read 0 all day."""

    after_s: float = Field(ge=0.001, le=7 * 86400, description="unchanged this long (event time)")
    band: float = Field(
        default=0.0,
        ge=0,
        description="a reading within this of the one before does not count as a change",
    )
    ignore_below: float | None = Field(
        default=None,
        description="a reading below this is never frozen: an anemometer in a calm, a gas sensor "
        "in clean air (a transmitter stuck there then goes unseen)",
    )
    tier: Tier = "yellow"
    action: str = Field(default="", max_length=200)


class MaintenanceSpec(Frozen):
    """Maintenance held too long: a 'maintenance' alarm when the sensor's readings have said
    calibration or manual (a value forced or entered by a person) for `after_s` of event time
    without a measured one in between. A detector left in calibration, a value forced for a
    test and forgotten, measure nothing while they alarm nothing: like an interlock's bypass,
    the time they may stay so is limited. It clears at the first reading that measures again (or
    reports a fault); comm-loss and stale readings neither continue nor end the time."""

    after_s: float = Field(
        ge=1, le=7 * 86400, description="in calibration or manual this long (event time)"
    )
    tier: Tier = "yellow"
    action: str = Field(default="", max_length=200)


class CalibrationDueSpec(Frozen):
    """Calibration due (标校超期, DOMAIN 1.3: carrier-catalytic methane sensors every 15 days,
    late calibration is a 重大事故隐患): a 'calibration_due' alarm at the sensor's first reading
    `every_days` of event time or more after its last calibration reading (quality
    calibration), or after its first reading when the hub knows no calibration of it (neither
    seen nor in its time-series store: `ingest.calibrations`). It clears at the next calibration
    reading. Comm-loss and stale readings are not judged (the no-data alarm says the link is
    down)."""

    every_days: float = Field(
        ge=0,
        le=400,
        description="calibrate at least this often (days of event time); 0: not checked (a "
        "sensor whose calibrations the readings do not flag, or one exempted)",
    )
    tier: Tier = "yellow"
    action: str = Field(default="", max_length=200)


# the kinds of sensor (what a point measures)
SensorKind = Literal[
    "methane",
    "co",
    "flammable_gas",
    "toxic_gas",
    "oxygen",
    "level",
    "pressure",
    "temperature",
    "wind_speed",
    "load",
    "moment",
    "tilt",
    "power_feed",
    "interlock",
    "speed",
    "other",
]


class RuleSpec(Frozen):
    description: str = ""
    levels: tuple[LevelSpec, ...]
    no_data_s: float | None = Field(
        default=None, gt=0, le=86400, description="raise 'no data' after this long without data"
    )
    rate: RateSpec | None = None
    early_warning: EarlyWarningSpec | None = None
    frozen: FrozenSpec | None = None
    maintenance: MaintenanceSpec | None = None
    calibration_due: CalibrationDueSpec | None = None
    lock_test: LockTestSpec | None = Field(
        default=None,
        description="the lock-out test interval of the plans (`verify:`) of the sensors on this "
        "rule that do not set their own; no effect on a sensor without a plan",
    )
    kinds: tuple[SensorKind, ...] = Field(
        default=(),
        description="the kinds of sensor the rule is meant for (a sensor of another kind naming "
        "it is refused); none: any",
    )
    units: tuple[str, ...] = Field(
        default=(),
        description="the units the rule's levels are in (%LEL, %OEL ...): a sensor whose unit is "
        "another is refused (a ppm detector on a %OEL rule alarms at 100 ppm, whatever the "
        "gas); a sensor without a unit, and a rule without units, are not checked",
    )

    @field_validator("levels")
    @classmethod
    def _some_levels(cls, levels: tuple[LevelSpec, ...]) -> tuple[LevelSpec, ...]:
        return some(levels, "at least 1 item is needed: a rule without levels raises nothing")

    @model_validator(mode="after")
    def _levels(self) -> Self:
        check_levels(self.levels)
        if self.early_warning is not None and all(lv.above is None for lv in self.levels):
            raise ValueError("early_warning needs a level above")
        return self


class RulePack(Frozen):
    """A named set of rules, shipped under ``profiles/rules/``; referenced as ``pack.rule``."""

    name: Ident
    description: str = ""
    source: str = ""
    rules: dict[Ident, RuleSpec]


class SuppressSpec(Frozen):
    """Suppression by design (ISA-18.2): the sensor's alarms are recorded but not notified while
    another sensor reads below or above a value (the unit is shut down), or while it has an
    active alarm (an upstream alarm explains this one)."""

    sensor: Ident
    below: float | None = None
    above: float | None = None
    alarm: bool = False

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum((self.below is not None, self.above is not None, self.alarm)) != 1:
            raise ValueError("give exactly one of 'below', 'above' or 'alarm: true'")
        return self
