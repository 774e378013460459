"""How `alerts.reference`'s `ReferenceCore` judges one reading on each side: the levels above
and below with their delays (`_judge`), a frozen value, a run of calibration or manual readings
(maintenance), the rate of rise and early warning (`_trend`), and the silence of a sensor with a
no-data timeout (`_silence`); each change of a side's level is a transition (`_set`). Split
from `alerts.reference`, whose `ReferenceCore` extends `ReferenceSides` and sets up the
attributes declared here; the code moved as it was. Not for production use.
"""

from __future__ import annotations

import math

from alerts.maintenance import HELD
from alerts.referencetrend import trend_levels
from alerts.table import (
    ABOVE,
    EARLY,
    FROZEN,
    MAINTENANCE,
    NO_DATA,
    RATE,
    RUN_CAP,
    SLOTS,
    RuleTable,
)
from alerts.verify import NO_TS, Row

__all__ = ["ReferenceSides"]


class ReferenceSides:
    """The sides of `ReferenceCore`, which sets up every attribute declared here."""

    table: RuleTable
    raw: list[list[bool]]
    active: list[list[bool]]
    run_start: list[list[int]]
    run_count: list[list[int]]
    level: list[list[int]]
    last_data: list[int]
    last_value: list[float]
    last_arrival: list[int]
    frozen_since: list[int]
    maint_since: list[int]
    hist: list[list[tuple[int, float]]]
    _below_plans: set[int]  # the sensors whose verification demands on the side below

    def _frozen(self, s: int, t: int, v: float, out: list[Row]) -> None:
        """A judged reading against the sensor's run of unmoved values (see `alerts.frozen`)."""
        moved = not abs(v - self.last_value[s]) <= self.table.frozen_band[s]
        if moved or v < self.table.frozen_floor[s] or self.frozen_since[s] == NO_TS:
            self.frozen_since[s] = t
        frozen = t - self.frozen_since[s] >= self.table.frozen_ms[s]
        self._set(s, t, v, FROZEN, int(frozen), out)

    def _maintenance(self, s: int, t: int, q: int, out: list[Row]) -> None:
        """A reading against the sensor's run of calibration or manual readings (see
        `alerts.maintenance`)."""
        since = self.maint_since[s]
        if q in HELD:
            if since == NO_TS:
                since = self.maint_since[s] = t
            overdue = t - since >= self.table.maint_ms[s]
            self._set(s, t, (t - since) / 1000.0, MAINTENANCE, int(overdue), out)
            return
        self.maint_since[s] = NO_TS
        held = (t - since) / 1000.0 if since != NO_TS else math.nan
        self._set(s, t, held, MAINTENANCE, 0, out)

    def _silence(self, s: int, now: int, out: list[Row]) -> None:
        """Silent on both clocks: no data for the timeout in event time, and nothing with a
        value arrived for it on the hub's (`alerts.nodata`)."""
        timeout, last = int(self.table.no_data[s]), self.last_data[s]
        idle = timeout > 0 and self.level[s][NO_DATA] == 0 and last != NO_TS
        quiet = self.last_arrival[s] == NO_TS or now - self.last_arrival[s] > timeout
        if idle and quiet and now - last > timeout:
            self._set(s, last + timeout, math.nan, NO_DATA, 1, out)

    def _set(self, s: int, t: int, v: float, side: int, level: int, out: list[Row]) -> None:
        if self.level[s][side] != level:
            out.append((s, t, v, side, self.level[s][side], level))
            self.level[s][side] = level

    def _trend(self, s: int, t: int, v: float, out: list[Row]) -> None:
        """Rate of rise and early warning of a judged reading (see `alerts.trend`)."""
        rate, early = trend_levels(self.table, s, self.hist[s], t, v, self.level[s][ABOVE])
        if rate is not None:
            self._set(s, t, v, RATE, rate, out)
        if early is not None:
            self._set(s, t, v, EARLY, early, out)

    def _judge(
        self,
        s: int,
        t: int,
        v: float,
        out: list[Row],
        changes: dict[int, list[tuple[int, int, int]]],
    ) -> None:
        table = self.table
        for j in range(2 * SLOTS):
            thr, rec = float(table.threshold[s, j]), float(table.recover[s, j])
            if math.isnan(thr):
                continue
            r = self.raw[s][j]
            if j < SLOTS:
                if v >= thr:
                    r = True
                elif v < rec:
                    r = False
            elif v <= thr:
                r = True
            elif v > rec:
                r = False
            if table.has_delays:
                if r != self.raw[s][j]:
                    self.run_start[s][j], self.run_count[s][j] = t, 1
                else:
                    self.run_count[s][j] = min(self.run_count[s][j] + 1, RUN_CAP)
                delay = table.on_delay[s, j] if r else table.off_delay[s, j]
                need = table.on_samples[s, j] if r else table.off_samples[s, j]
                if t - self.run_start[s][j] >= delay and self.run_count[s][j] >= need:
                    self.active[s][j] = r
            else:
                self.active[s][j] = r
            self.raw[s][j] = r
        for side in (0, 1):
            slots = self.active[s][side * SLOTS : (side + 1) * SLOTS]
            new_level = max((k + 1 for k, on in enumerate(slots) if on), default=0)
            if new_level != self.level[s][side]:
                if side == ABOVE:  # for the votes, and a plan demanding above
                    changes.setdefault(s, []).append((t, self.level[s][side], new_level))
                elif s in self._below_plans:  # a plan demanding below: under key -1 - s
                    changes.setdefault(-1 - s, []).append((t, self.level[s][side], new_level))
                self._set(s, t, v, side, new_level, out)
