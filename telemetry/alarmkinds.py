"""The names a subscription's match and a silence may give: the kinds of alarm the hub raises
and the events of an alarm's life that are notified. Pure vocabulary, part of
`telemetry.notifyconfig` (which re-exports it); the alert core's own list of alarm kinds is
`alerts.table.ALARM_KIND_NAMES`.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["ALARM_KINDS", "EVENT_KINDS", "AlarmKind", "EventKind"]

AlarmKind = Literal[
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
    "lock_test_overdue",
    "data_lost",
    "clock_behind",
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
    "terminal_emergency",
    "terminal_overspeed",
    "terminal_fatigue",
    "terminal_danger",
    "terminal_gnss_fault",
    "terminal_antenna_cut",
    "terminal_antenna_short",
    "terminal_power_low",
    "terminal_power_off",
    "terminal_camera_fault",
    "terminal_illegal_driving",
    "terminal_tyre_pressure",
    "terminal_blind_zone",
    "terminal_day_driving",
    "terminal_parking",
    "terminal_area",
    "terminal_route",
    "terminal_segment_time",
    "terminal_off_route",
    "terminal_stolen",
    "terminal_illegal_ignition",
    "terminal_illegal_move",
    "terminal_collision",
    "terminal_rollover",
    "terminal_door_open",
]
EventKind = Literal[
    "raised",
    "escalated",
    "deescalated",
    "cleared",
    "acknowledged",
    "centre_acknowledged",
    "shelved",
    "unshelved",
    "suppressed",
    "unsuppressed",
    "out_of_service",
    "in_service",
    "commented",
    "verified",
    "disposed",
    "closed",
    "submitted",
    "approved",
    "returned",
    "overdue",
    "repeat",
    "escalation",
]
# the names as tuples, for whoever lists them (the alarm kinds: alerts.table.ALARM_KIND_NAMES)
ALARM_KINDS: tuple[str, ...] = get_args(AlarmKind)
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
