"""Compile the sensors' threshold levels into numpy rule tables (once per configuration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telemetry.config import LevelSpec
from telemetry.registry import SensorInfo

__all__ = ["HIGH", "LOW", "SLOTS", "RuleTable", "compile_table"]

SLOTS = 4  # levels per side
HIGH = 0
LOW = 1
TIERS = ("none", "blue", "yellow", "orange", "red")


@dataclass(frozen=True, slots=True, eq=False)
class RuleTable:
    """Per sensor and slot: threshold, recovery threshold, tier.

    Slots 0-3 are the levels above (rising thresholds), 4-7 the levels below (falling thresholds).
    Unused slots hold NaN, which never decides anything.
    """

    threshold: npt.NDArray[np.float64]  # (n, 8)
    recover: npt.NDArray[np.float64]  # (n, 8)
    tier: npt.NDArray[np.uint8]  # (n, 8) index into TIERS
    has_rules: npt.NDArray[np.bool_]  # (n,)
    levels: tuple[tuple[tuple[LevelSpec, ...], tuple[LevelSpec, ...]], ...]  # (above, below)

    @property
    def size(self) -> int:
        return int(self.has_rules.shape[0])

    def level(self, sensor: int, side: int, number: int) -> LevelSpec | None:
        """The LevelSpec of level `number` (1-based) on `side`, None for level 0."""
        if number <= 0:
            return None
        return self.levels[sensor][side][number - 1]


def compile_table(sensors: Sequence[SensorInfo]) -> RuleTable:
    n = len(sensors)
    threshold = np.full((n, 2 * SLOTS), np.nan)
    recover = np.full((n, 2 * SLOTS), np.nan)
    tier = np.zeros((n, 2 * SLOTS), dtype=np.uint8)
    levels = []
    for i, info in enumerate(sensors):
        above = tuple(lv for lv in info.levels if lv.above is not None)
        below = tuple(lv for lv in info.levels if lv.below is not None)
        for j, lv in enumerate(above):
            threshold[i, j] = lv.above
            recover[i, j] = lv.recover
            tier[i, j] = TIERS.index(lv.tier)
        for j, lv in enumerate(below):
            threshold[i, SLOTS + j] = lv.below
            recover[i, SLOTS + j] = lv.recover
            tier[i, SLOTS + j] = TIERS.index(lv.tier)
        levels.append((above, below))
    has_rules = ~np.isnan(threshold).all(axis=1)
    return RuleTable(threshold, recover, tier, has_rules, tuple(levels))
