"""Verification plans: what a sensor's `VerifySpec` demands of its feedback sensors, compiled once
per configuration (`compile_table`), and the rule table's per-plan arrays; judged by
`alerts.verify`. Split from `alerts.table` (the code moved as it was).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alerts.kinds import ABOVE, BELOW
from telemetry.config import LevelSpec, VerifySpec

__all__ = ["VerifyPlan", "compile_plan", "plan_index"]


@dataclass(frozen=True, slots=True)
class VerifyPlan:
    """Sensor `sensor` at level >= `number` on its `side` (ABOVE, or BELOW: a local fan's
    stop) demands that every one of `feedbacks` reads below `bound` (above it when not
    `below`) within `within_ms` of the event time. Without a feedback reading past the deadline,
    the hub's clock must pass it by `grace_ms` to decide. With `hold`, once met the demand is
    watched while it lasts; with `on_fault`, the sensor in fault demands it too
    (`alerts.verify`)."""

    sensor: int
    feedbacks: tuple[int, ...]
    number: int
    below: bool
    bound: float
    within_ms: int
    grace_ms: int = 0
    side: int = ABOVE
    hold: bool = False
    on_fault: bool = False  # a sensor fault demands it too (故障闭锁, `VerifySpec.on_fault`)

    def satisfied(self, value: float) -> bool:
        """NaN (nothing known) never satisfies."""
        return value < self.bound if self.below else value > self.bound


def compile_plan(
    sensor: int,
    spec: VerifySpec,
    above: tuple[LevelSpec, ...],
    below: tuple[LevelSpec, ...],
    by_id: Mapping[str, int],
) -> VerifyPlan | None:
    """The plan of sensor `sensor` (an index) with levels `above` and `below`; None when it has
    no level or a feedback sensor is unknown (`by_id`: the sensors' indices by id)."""
    feeds = (spec.sensor, *spec.also)
    if not (all(f in by_id for f in feeds) and (above or below)):
        return None
    # the level named, else the highest above, else (a sensor with levels below
    # only: a fan's running signal, an air speed) the lowest below
    names = [lv.name for lv in above]
    lows = [lv.name for lv in below]
    if spec.level in lows or (spec.level not in names and not above):
        demand = BELOW
        number = lows.index(spec.level) + 1 if spec.level in lows else len(below)
    else:
        demand = ABOVE
        number = names.index(spec.level) + 1 if spec.level in names else len(above)
    bound = spec.expect_below if spec.expect_below is not None else spec.expect_above
    return VerifyPlan(
        sensor,
        tuple(by_id[f] for f in feeds),
        number,
        spec.expect_below is not None,
        float(bound if bound is not None else np.nan),
        round(spec.within_s * 1000),
        round(spec.grace_s * 1000),
        demand,
        spec.hold,
        spec.on_fault,
    )


def plan_index(plans: Sequence[VerifyPlan]) -> dict[str, Any]:
    """The `RuleTable` fields of these plans: `verify` and its per-plan arrays."""
    return {
        "verify": tuple(plans),
        "verify_sensor": np.array([p.sensor for p in plans], dtype=np.int64),
        "verify_grace": np.array([p.grace_ms for p in plans], dtype=np.int64),
        "verify_pair_plan": np.array(
            [k for k, p in enumerate(plans) for _ in p.feedbacks], dtype=np.int64
        ),
        "verify_pair_feedback": np.array([f for p in plans for f in p.feedbacks], dtype=np.int64),
        "verify_pair_ptr": np.cumsum([0, *(len(p.feedbacks) for p in plans)], dtype=np.int64),
        "verify_side": np.array([p.side for p in plans], dtype=np.int64),
        "verify_hold": np.array([p.hold for p in plans], dtype=np.bool_),
        "has_hold": any(p.hold for p in plans),
        "verify_bound": np.array([p.bound for p in plans], dtype=np.float64),
        "verify_below": np.array([p.below for p in plans], dtype=np.bool_),
        "verify_on_fault": np.array([p.on_fault for p in plans], dtype=np.bool_),
        "has_on_fault": any(p.on_fault for p in plans),
    }
