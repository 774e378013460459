"""The alarm kinds: the core's sides (what a sensor's level number is about), the fleet
analytics' and the terminals' kinds numbered after them, their names (the `side` column of
alarms, `alarm_kind` in notifications), and the tiers. Split from `alerts.table`, which
re-exports them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telemetry.activesafety import SAFETY_KINDS
from telemetry.notifyconfig import TIERS as CONFIG_TIERS

if TYPE_CHECKING:
    from telemetry.registry import Registry, SensorInfo

__all__ = [
    "ABOVE",
    "ACTION",
    "ALARM_KIND_NAMES",
    "ALARM_KIND_SIDES",
    "BELOW",
    "BYPASS_UNAPPROVED",
    "CALIBRATION_DUE",
    "CLOCK_BEHIND",
    "DATA_LOST",
    "EARLY",
    "FAULT",
    "FLEET_KINDS",
    "FLEET_SIDE0",
    "FROZEN",
    "HAZARD_OVERDUE",
    "HAZARD_REVIEW_OVERDUE",
    "HIGH",
    "LOCK_TEST",
    "LOW",
    "MAINTENANCE",
    "NO_DATA",
    "RATE",
    "SAFETY_SIDES",
    "SIDES",
    "SIDE_NAMES",
    "SLOTS",
    "TERMINAL_KINDS",
    "TIERS",
    "TIER_RANK",
    "alarm_value_unit",
    "kind_name",
    "value_unit",
]

SLOTS = 4  # levels per side
HIGH = ABOVE = 0  # process levels above (rising thresholds)
LOW = BELOW = 1  # process levels below (falling thresholds)
FAULT = 2  # the transmitter reports a fault: a sensor-fault alarm, never a process alarm
NO_DATA = 3  # comm loss, or silence beyond the sensor's no-data timeout
ACTION = 4  # a demanded protective action was not confirmed in time (馈电异常)
RATE = 5  # the value rises faster than the rule's rate of rise
EARLY = 6  # early warning: the trend reaches the next level above within the horizon
FROZEN = 7  # the value has not moved for the sensor's frozen time (a stuck transmitter)
MAINTENANCE = 8  # in calibration or manual longer than the sensor's limit (a forgotten detector)
CALIBRATION_DUE = 9  # no calibration for the sensor's interval (标校超期)
SIDES = 10
SIDE_NAMES = (
    "above",
    "below",
    "fault",
    "no_data",
    "action_failed",
    "rate",
    "early_warning",
    "frozen",
    "maintenance",
    "calibration_due",
)
# a gateway's spool dropped readings of the point (alerts.gatewayalarms): numbered after the
# core's sides, which it does not judge (8 until the core's MAINTENANCE took it: the state
# database's schema 7 renumbers its alarms and shelves)
DATA_LOST = 15
# a device's gateway clock fell back: its readings refused, the device unwatched (`ingest.clocks`,
# alerts.gatewayalarms)
CLOCK_BEHIND = 14
# a protective-action plan's lock-out not tested for its interval, or its last test failed
# (`alerts.locktests`: judged on the hub's clock, not by the core)
LOCK_TEST = 13
# a hidden-danger item past its rectification deadline, and its review request undecided past
# its 10 days (`alerts.hazardalarms`: judged on the hub's clock, not by the core)
HAZARD_OVERDUE = 11
HAZARD_REVIEW_OVERDUE = 12
# an interlock bypassed without a written approval covering now (`alerts.bypassalarms`: judged on
# the hub's clock, not by the core); numbered after every other kind (the core's sides, the
# fleet's and the terminals' numbers below grow into the gaps)
BYPASS_UNAPPROVED = 128
# the tiers as the core numbers them (`RuleTable.tier`): 0 none (normal), then those a level may
# be given (`telemetry.configbase.Tier`, blue ... red), each above the one before
TIERS: tuple[str, ...] = ("none", *CONFIG_TIERS)
# a tier's rank, for "the highest tier" (unknown tiers rank with none)
TIER_RANK: dict[str, int] = {t: i for i, t in enumerate(TIERS)}
# the alarm kinds of the fleet analytics (alerts.vehicles), numbered after the core's sides
FLEET_SIDE0 = 16
FLEET_KINDS = (
    "overspeed",
    "fatigue",
    "fatigue_daily",
    "night_ban",
    "corridor",
    "forbidden_area",
    "offline",
    "drift",
    "offline_moved",
    "fatigue_weekly",
)
# the terminal's own alarm bits (alerts.vehicles.terminal): kind number 32 + bit
TERMINAL_KINDS: dict[int, str] = {
    0: "terminal_emergency",
    1: "terminal_overspeed",
    2: "terminal_fatigue",
    3: "terminal_danger",
    4: "terminal_gnss_fault",
    5: "terminal_antenna_cut",
    6: "terminal_antenna_short",
    7: "terminal_power_low",
    8: "terminal_power_off",
    11: "terminal_camera_fault",
    15: "terminal_illegal_driving",
    16: "terminal_tyre_pressure",
    17: "terminal_blind_zone",
    18: "terminal_day_driving",
    19: "terminal_parking",
    20: "terminal_area",
    21: "terminal_route",
    22: "terminal_segment_time",
    23: "terminal_off_route",
    26: "terminal_stolen",
    27: "terminal_illegal_ignition",
    28: "terminal_illegal_move",
    29: "terminal_collision",
    30: "terminal_rollover",
    31: "terminal_door_open",
}
# the active-safety kinds of 苏标 terminals (alerts.vehicles.safety): ADAS type t is kind number
# 64 + t, DSM type t 96 + t (types 0-31)
SAFETY_SIDES: dict[int, str] = {
    (64 if source == "adas" else 96) + t: name for (source, t), name in SAFETY_KINDS.items()
}
ALARM_KIND_NAMES: dict[int, str] = {
    **dict(enumerate(SIDE_NAMES)),
    DATA_LOST: "data_lost",
    CLOCK_BEHIND: "clock_behind",
    LOCK_TEST: "lock_test_overdue",
    HAZARD_OVERDUE: "hazard_overdue",
    HAZARD_REVIEW_OVERDUE: "hazard_review_overdue",
    BYPASS_UNAPPROVED: "bypass_unapproved",
    **{FLEET_SIDE0 + i: name for i, name in enumerate(FLEET_KINDS)},
    **{32 + bit: name for bit, name in TERMINAL_KINDS.items()},
    **SAFETY_SIDES,
}
ALARM_KIND_SIDES: dict[str, int] = {name: side for side, name in ALARM_KIND_NAMES.items()}


def kind_name(side: int) -> str:
    """The name of an alarm kind (the `side` column of alarms)."""
    return ALARM_KIND_NAMES.get(side, str(side))


# what an alarm's value measures, for the kinds whose value is not the sensor's reading (the
# fleet's: docs/vehicles.md)
_VALUE_UNITS = {
    "overspeed": "km/h",
    "night_ban": "km/h",
    "forbidden_area": "km/h",
    "drift": "km/h",
    "fatigue": "s",
    "fatigue_daily": "s",
    "fatigue_weekly": "s",
    "offline": "s",
    "corridor": "m",
    "offline_moved": "m",
    "data_lost": "readings",
    "clock_behind": "d",
    "maintenance": "s",
    "calibration_due": "d",
    "lock_test_overdue": "d",
    "hazard_overdue": "d",
    "hazard_review_overdue": "d",
    "bypass_unapproved": "h",  # how long the loop has been bypassed
    "no_data": "",
    "fault": "",  # no value: a fault's reading is no measurement (`AlarmBook._one`)
}


def value_unit(kind: str, sensor_unit: str, feedback_unit: str = "") -> str:
    """The unit of an alarm's `value`: the sensor's for its process alarms, seconds of driving or
    silence, metres off the route, readings lost ... for the others; a failed verification's
    is its feedback's (the feed still on: `feedback_unit`); "" for none (a terminal's alarm
    has no value)."""
    found = _VALUE_UNITS.get(kind)
    if found is not None:
        return found
    if kind == "action_failed":
        return feedback_unit
    return "" if kind.startswith(("terminal_", "adas_", "dsm_")) else sensor_unit


def alarm_value_unit(registry: Registry, info: SensorInfo | None, kind: str) -> str:
    """`value_unit` of an alarm of the sensor `info` (as `Registry.sensor_of` finds it for the
    alarm: None for a device's or gateway's alarm, or a sensor id now another's) as `registry`
    configures it: the sensor's unit and its verification's feedback's ("" without one)."""
    feed = registry.sensor(info.verify.sensor) if info is not None and info.verify else None
    return value_unit(
        kind, info.unit if info is not None else "", feed.unit if feed is not None else ""
    )
