"""The hub's wall clock stepped (set by hand, NTP stepping instead of slewing, a VM resumed).

Every deadline of the hub is wall-clock time: no-data timeouts, disposals falling overdue,
shelves expiring, fatigue rules. A forward step of an hour made a burst of overdue
notifications, and nothing said why but the lag metric (helper-195's sysadmin). A step by NTP
is usually a correction, so the deadlines keep their wall-clock meaning; but the hub says it:
`clock_step` compares how far the wall clock and the monotonic clock moved between two ticks,
and `ClockSteps` logs a warning with the step's size, counts it in
`hazardhub_clock_steps_total` and keeps the last step's size in
`hazardhub_clock_last_step_seconds`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ingest.metrics import Metrics
from telemetry.clock import wall_ms

__all__ = ["STEP_MS", "ClockSteps", "clock_step"]

log = logging.getLogger("ingest.service")

STEP_MS = 30_000  # wall and monotonic clocks apart by more than this between two ticks: a step


def clock_step(
    before: tuple[int, int], now: tuple[int, int], threshold_ms: int = STEP_MS
) -> int | None:
    """The wall clock's step between two readings of (wall ms, monotonic ms), in ms (positive:
    forward), when it moved more than `threshold_ms` apart from the monotonic clock; None
    otherwise (NTP slewing moves it at most 0.5 ms a second apart)."""
    step = (now[0] - before[0]) - (now[1] - before[1])
    return step if abs(step) > threshold_ms else None


class ClockSteps:
    def __init__(
        self,
        metrics: Metrics,
        wall: Callable[[], int] = wall_ms,
        mono: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
        threshold_ms: int = STEP_MS,
    ) -> None:
        self.metrics = metrics
        self._wall = wall
        self._mono = mono
        self.threshold_ms = threshold_ms
        self._before: tuple[int, int] | None = None

    def check(self) -> int | None:
        """Read both clocks; the step since the last check (ms), said and counted, or None."""
        now = (self._wall(), self._mono())
        before, self._before = self._before, now
        if before is None:
            return None
        step = clock_step(before, now, self.threshold_ms)
        if step is None:
            return None
        self.metrics.inc("hazardhub_clock_steps_total")
        self.metrics.set("hazardhub_clock_last_step_seconds", step / 1000)
        log.warning(
            "the hub's clock stepped %s by %.1f s (wall clock against the monotonic clock "
            "between two ticks): deadlines keep their wall-clock meaning, so no-data timeouts, "
            "overdue disposals, shelves and fatigue rules %s; run NTP with slewing on the "
            "hub's host (docs/operations.md#clocks)",
            "forward" if step > 0 else "back",
            abs(step) / 1000,
            "fall due at once (a burst of overdue alarms and notifications may follow)"
            if step > 0
            else "fall due that much later",
        )
        return step
