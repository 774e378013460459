"""The texts an alarm carries: the level name, tier and action of the sides that are not process
levels, the action of a sensor fault by the sensor's kind, and of an action_failed alarm (a
verification not confirmed, a fault lock-out's, a held action's break); `RuleTable.describe`
says them. Split from `alerts.table` (the texts moved as they were); what an action_failed
change says beside its action is `alerts.actionsaid`'s, which needs the core's state.
"""

from __future__ import annotations

from alerts.kinds import ACTION, FAULT, NO_DATA
from telemetry.config import (
    CalibrationDueSpec,
    EarlyWarningSpec,
    FrozenSpec,
    LevelSpec,
    MaintenanceSpec,
    RateSpec,
)

__all__ = [
    "SIDE_LEVELS",
    "broken_action",
    "calibration_level",
    "early_level",
    "fault_action",
    "fault_lock_action",
    "frozen_level",
    "overdue_level",
    "rate_level",
    "unconfirmed",
]

# name, tier and action of level 1 of the sides that are not process levels
SIDE_LEVELS = {
    FAULT: ("sensor_fault", "orange", "传感器故障: 检查传感器 check the sensor"),
    NO_DATA: ("no_data", "yellow", "无数据: 检查设备及通讯 check the device and its link"),
    ACTION: (
        "action_failed",
        "red",
        "保护动作未确认: 立即人工处置 the protective action was not confirmed: act by hand",
    ),
}


# what a failed verification is called, by the kind of the sensor verified (a crane's load
# said "如馈电异常", a coal mine's word, helper-126)
_UNCONFIRMED_AS = {
    "methane": "馈电异常 ",
    "co": "馈电异常 ",
    "load": "限制器未动作 the limiter did not act; ",
    "moment": "限制器未动作 the limiter did not act; ",
}
# a fault lock-out's failure (故障闭锁: the sensor in fault demanded the action), by the kind
# of the sensor verified
_FAULT_LOCK = (
    "故障闭锁: 传感器故障, 保护动作未确认, 立即人工处置 sensor fault and the protective action"
    " not confirmed: act by hand"
)
_FAULT_LOCK_AS = dict.fromkeys(
    ("methane", "co"),
    "故障闭锁: 传感器故障, 断电未确认, 立即人工断电 sensor fault and the power cut not confirmed:"
    " cut by hand",
)
# a held action that broke (`VerifySpec.hold`): what to do, by the sensor's kind (helper-142: a
# face re-energised during the cut read "not confirmed within 2 s", another failure)
_BROKEN_AS = dict.fromkeys(
    ("methane", "co"),
    "复电违规: 需求未结束已恢复送电 ({feeds}), 立即断电 power is back on while the level lasts"
    " ({feeds}): cut it at once",
)
_BROKEN = (
    "保护动作未保持: {feeds} 在需求期间恢复, 立即处置 the protective action did not hold"
    " ({feeds} back while the level lasts): undo it at once"
)
# a sensor fault's action by the sensor's kind, where the fault itself is a hazard to say
_GAS_FAULT = (
    "气体探测器故障: 该区域失去监测, 派人携便携式检测仪检测并尽快修复 gas detector fault: the"
    " area is unwatched; check it with a portable detector and repair the detector"
)
_LOAD_FAULT = (
    "起重量/力矩检测故障: 限制器失去监测, 停止吊运直至修复 load or moment sensor fault: the"
    " limiter's monitoring is blind; no lifting until it is repaired"
)
_WIND_FAULT = (
    "风速仪故障: 大风时不能报警, 停止露天起吊直至修复 anemometer fault: no wind alarm; no open-air"
    " lifting until it is repaired"
)
# a wind sensor judged by other than the crane pack: a mine's air flow (or a crane's own rule)
_AIR_FAULT = (
    "风速传感器故障: 该处风速失去监测, 派人测风并尽快修复 (起重机: 停止露天起吊) wind sensor"
    " fault: the air flow is unwatched; measure it by hand and repair the sensor (a crane: no"
    " open-air lifting until it is repaired)"
)
_FAULT_ACTIONS = (
    dict.fromkeys(("methane", "co", "flammable_gas", "toxic_gas", "oxygen"), _GAS_FAULT)
    | dict.fromkeys(("load", "moment"), _LOAD_FAULT)
    | {"wind_speed": _AIR_FAULT}
)


def fault_action(kind: str, rule: str) -> str | None:
    """A sensor fault's action, by the sensor's kind and, for wind, its rule: the crane pack's
    anemometer stops lifting, a mine's wind sensor leaves the air flow unwatched (helper-142:
    a mine's read "no open-air lifting")."""
    if kind == "wind_speed" and rule.startswith("crane."):
        return _WIND_FAULT
    return _FAULT_ACTIONS.get(kind)


def unconfirmed(feeds: tuple[str, ...], within_s: float, kind: str = "") -> str:
    """A verified action's failure, as the operator reads it without an `action:` of its own:
    which feedback sensors did not confirm, and what to do (a dispatcher read "the protective
    action was not confirmed" on the methane sensor's row and had to guess which feed, 98)."""
    names = ", ".join(feeds)
    called = _UNCONFIRMED_AS.get(kind, "")
    return (
        f"保护动作未确认: {called}{names} 未在 {within_s:g} s 内确认, 立即人工处置 "
        f"the protective action was not confirmed by {names} within {within_s:g} s: act by hand"
    )


def fault_lock_action(kind: str) -> str:
    """A fault lock-out's failure (故障闭锁), by the kind of the sensor verified."""
    return _FAULT_LOCK_AS.get(kind, _FAULT_LOCK)


def broken_action(kind: str, feeds: tuple[str, ...]) -> str:
    """A held action's break, by the kind of the sensor verified, naming its feedbacks."""
    return _BROKEN_AS.get(kind, _BROKEN).format(feeds=", ".join(feeds))


def rate_level(rate: RateSpec | None) -> tuple[str, str, str]:
    """(level name, tier, action) of a rate of rise."""
    if rate is None:
        return "rate_of_rise", "yellow", ""
    what = f"rising faster than {rate.per_min:g} per min"
    return "rate_of_rise", rate.tier, rate.action or what


def frozen_level(frozen: FrozenSpec | None) -> tuple[str, str, str]:
    """(level name, tier, action) of a frozen value."""
    if frozen is None:
        return "frozen_value", "yellow", ""
    band = f" by more than {frozen.band:g}" if frozen.band else ""
    what = f"the value has not moved{band} for {frozen.after_s:g} s: check the sensor"
    return "frozen_value", frozen.tier, frozen.action or what


def overdue_level(maint: MaintenanceSpec | None) -> tuple[str, str, str]:
    """(level name, tier, action) of calibration or manual held too long."""
    after = f" {maint.after_s:g} s" if maint is not None else ""
    what = (
        f"标定/手动超时: 传感器未在监测, 核实并恢复 in calibration or manual over{after}: "
        "the sensor measures nothing; check it and bring it back"
    )
    if maint is None:
        return "overdue", "yellow", what
    return "overdue", maint.tier, maint.action or what


def calibration_level(cal: CalibrationDueSpec | None) -> tuple[str, str, str]:
    """(level name, tier, action) of calibration due."""
    every = f"{cal.every_days:g} 天 days" if cal is not None else "its interval"
    what = f"标校超期: 超过 {every} 未标校, 立即标校 calibration overdue: calibrate the sensor"
    level = "calibration_overdue"
    return level, cal.tier if cal else "yellow", (cal.action if cal else "") or what


def early_level(
    above: tuple[LevelSpec, ...], early: EarlyWarningSpec | None, number: int
) -> tuple[str, str, str]:
    """(level name, tier, action) of an early warning of level `number` of the levels `above`."""
    target = above[number - 1].name if number <= len(above) else str(number)
    within = f" within {early.horizon_s:g} s" if early is not None else ""
    return "early_warning", "blue", f"trend reaches {target}{within}: act before it"
