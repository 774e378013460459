"""Plain-Python twin of `alerts.evaluate`, one reading at a time: the specification the vectorized
core is property-tested against (see the semantics there and in `alerts.trend`). Its lateness
window (rewinding a sensor from its checkpoint) is in `alerts.rewind`, its voting groups' readings
in `alerts.referencevote`, its rate of rise and early warning in `alerts.referencetrend`, how it
judges one reading on each side in `alerts.referencesides`. Not for production use."""

from __future__ import annotations

import math
import operator

import numpy as np
import numpy.typing as npt

from alerts.calibration import DAY_MS
from alerts.maintenance import PASS
from alerts.referencesides import ReferenceSides
from alerts.referencevote import (
    Changes,
    GroupReading,
    fresh_group_readings,
    group_members,
    vote_readings,
)
from alerts.rewind import Rewinding
from alerts.table import (
    ABOVE,
    ACTION,
    CALIBRATION_DUE,
    FAULT,
    NO_DATA,
    RUN_CAP,
    SIDES,
    SLOTS,
    RuleTable,
)
from alerts.verify import NO_TS, UNMEASURED, Row, verify_step
from telemetry.quality import MEASURED, Quality

__all__ = ["ReferenceCore", "Row", "reference_evaluate"]

RUN_START0 = -(2**62)
_ORDER = operator.itemgetter(0, 1, 3)  # transitions by (sensor, ts, side), stable
_VALUED = MEASURED
_LOSS = (Quality.COMM_LOSS, Quality.STALE)


class ReferenceCore(Rewinding, ReferenceSides):
    """The state as Python lists, judged reading by reading."""

    def __init__(self, table: RuleTable, *, checkpoint: bool = True) -> None:
        n = table.size
        self.table = table
        self._below_plans = {p.sensor for p in table.verify if p.side != ABOVE}
        self.raw = [[False] * (2 * SLOTS) for _ in range(n)]
        self.active = [[False] * (2 * SLOTS) for _ in range(n)]
        self.run_start = [[RUN_START0] * (2 * SLOTS) for _ in range(n)]
        self.run_count = [[RUN_CAP] * (2 * SLOTS) for _ in range(n)]
        self.level = [[0] * SIDES for _ in range(n)]
        self.last_ts = [NO_TS] * n
        self.last_data = [NO_TS] * n
        self.last_value = [math.nan] * n
        self.deadline = [NO_TS] * n
        self.met = [False] * n
        self.broke = [NO_TS] * n  # a held action's break (`CoreState.broke`)
        self.last_arrival = [NO_TS] * n  # `now` when a reading of the sensor last arrived
        self.frozen_since = [NO_TS] * n  # the start of the sensor's run of unmoved values
        self.maint_since = [NO_TS] * n  # the start of its run of calibration/manual readings
        self.calib_at = [NO_TS] * n  # its last calibration (or first judged reading)
        self.hist: list[list[tuple[int, float]]] = [[] for _ in range(n)]  # trend sensors' readings
        # the lateness window (see `alerts.lateness`): per sensor its last readings after the
        # checkpoint, and the checkpoints (the per-sensor fields of another core)
        self.ring: list[list[tuple[int, float, int]]] = [[] for _ in range(n)]
        window = checkpoint and table.lateness_ms > 0
        self.ck = ReferenceCore(table, checkpoint=False) if window else None
        self.outcome = (0, 0, 0, 0)  # judged, late, rewound, late_in_window of the last batch
        # (sensor, side): the time of the last transition that came out (`CoreState.told`)
        self.told: dict[tuple[int, int], int] = {}
        self._group_cache: tuple[RuleTable, dict[int, list[int]]] | None = None

    def evaluate(
        self,
        sensor: npt.NDArray[np.int32],
        ts: npt.NDArray[np.int64],
        value: npt.NDArray[np.float64],
        quality: npt.NDArray[np.uint8],
        now: int | None = None,
        *,
        groups: bool = False,
    ) -> list[Row]:
        """Judge a batch; returns the transitions ordered by (sensor, ts, side). `groups`: the
        voting groups' own readings (no group judged afresh first)."""
        table = self.table
        ck = self.ck
        first = [] if groups else self._fresh_groups({int(x) for x in sensor})
        above_before = [row[ABOVE] for row in self.level]
        # a plan's sides before the batch (a fault lock-out's demand: `alerts.verify.demands`)
        plan_before = {
            p.sensor: (self.level[p.sensor][p.side], self.level[p.sensor][FAULT])
            for p in table.verify
        }
        # the levels before the batch of the members of groups that count failed members
        level_before = (
            {m: list(self.level[m]) for m in np.flatnonzero(table.fails_vote).tolist()}
            if table.counts_failed
            else {}
        )
        if now is not None:
            for core in (self, ck):
                if core is None:
                    continue
                for s in range(table.size):
                    if core.last_data[s] == NO_TS and table.no_data[s] > 0:
                        core.last_data[s] = now
        rows = []
        late = rewound = in_window = 0
        rewind: dict[int, int] = {}  # rewound sensor: its earliest rewound time
        for i in range(len(ts)):
            s, t = int(sensor[i]), int(ts[i])
            # a reading with a value, newer than the sensor's last, is heard (`alerts.verify`,
            # `alerts.nodata`): then `arrived` is `now`
            valued = int(quality[i]) in _VALUED and math.isfinite(value[i])
            arrived = now if valued else None
            if not table.watched[s]:
                if arrived is not None:
                    self.last_arrival[s] = arrived
                continue
            if t <= self.last_ts[s]:  # late: not heard, even when judged in the window
                near = ck is not None and table.rewinds[s]
                near = near and self.last_ts[s] - t <= table.lateness_ms
                if near and ck is not None and t > ck.last_ts[s]:
                    rewind[s] = min(rewind.get(s, t), t)
                    rewound += 1
                else:
                    late += 1
                    in_window += int(near)
                    continue
            elif arrived is not None:
                self.last_arrival[s] = arrived
            rows.append((s, t, i, float(value[i]), int(quality[i])))
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        kept = [
            (s, t, v, q)
            for k, (s, t, _, v, q) in enumerate(rows)
            if not (k + 1 < len(rows) and rows[k + 1][0] == s and rows[k + 1][1] == t)
        ]  # of equal event times the last in input order counts
        hist_before = [list(h) for h in self.hist] if ck is not None else []
        out: list[Row] = first
        changes: dict[int, list[tuple[int, int, int]]] = {}
        feed: dict[int, list[tuple[int, float]]] = {}
        before_value = list(self.last_value)
        judged = 0
        batch: dict[int, list[tuple[int, float, int]]] = {}
        for s, t, v, q in kept:
            judged += int(q in _VALUED and math.isfinite(v) and bool(table.has_rules[s]))
            if s in rewind:
                batch.setdefault(s, []).append((t, v, q))
                if q in _VALUED and math.isfinite(v):
                    feed.setdefault(s, []).append((t, v))
                continue
            self._step(s, t, v, q, out, changes, feed)
            if ck is not None and table.rewinds[s]:
                batch.setdefault(s, []).append((t, v, q))
        if ck is not None:
            for s in sorted(rewind):
                self._rewind(s, batch[s], rewind[s], hist_before[s], now, out, changes)
            for s in sorted(batch):
                self._keep(s, batch[s], s in rewind, hist_before[s])
        for plan in table.verify:
            key = plan.sensor if plan.side == ABOVE else -1 - plan.sensor
            mine = [
                (r[1], r[5]) for r in out if plan.on_fault and r[0] == plan.sensor and r[3] == FAULT
            ]
            if key not in changes and not mine and self.deadline[plan.sensor] == NO_TS:
                continue
            seen = [t for t, _ in feed.get(plan.sensor, [])]
            if plan.hold:  # and its readings in fault, calibration or manual
                seen += [t for s, t, _, q in kept if s == plan.sensor and q in UNMEASURED]
            found, deadline, met, failed, broke = verify_step(
                plan,
                changes.get(key, []),
                sorted((t, j, v) for j, f in enumerate(plan.feedbacks) for t, v in feed.get(f, [])),
                [before_value[f] for f in plan.feedbacks],
                self.deadline[plan.sensor],
                self.met[plan.sensor],
                self.level[plan.sensor][ACTION],
                now,
                max(self.last_arrival[f] for f in plan.feedbacks),
                self.broke[plan.sensor],
                sorted(seen),
                sorted(mine, key=lambda r: r[0]),
                plan_before[plan.sensor],
            )
            out.extend(found)
            self.deadline[plan.sensor], self.met[plan.sensor] = deadline, met
            self.broke[plan.sensor] = broke
            self.level[plan.sensor][ACTION] = failed
        if now is not None:
            for s in range(table.size):
                self._silence(s, now, out)
        # (a pass of its own: sets outcome)
        ordered = sorted(out, key=_ORDER) if table.counts_failed else []
        out.extend(self._votes(changes, above_before, ordered, level_before))
        self.outcome = (judged, late, rewound, in_window)
        out.sort(key=_ORDER)
        if ck is not None and not groups:
            for r in out:
                side_of = (r[0], r[3])
                self.told[side_of] = max(self.told.get(side_of, r[1]), r[1])
        return out

    def _step(
        self,
        s: int,
        t: int,
        v: float,
        q: int,
        out: list[Row],
        changes: dict[int, list[tuple[int, int, int]]],
        feed: dict[int, list[tuple[int, float]]],
    ) -> None:
        """Judge one reading of sensor `s` (in event-time order)."""
        table = self.table
        valued = q in _VALUED and math.isfinite(v)
        rules = bool(table.has_rules[s])
        if valued and rules:
            self._judge(s, t, v, out, changes)
            if table.trend_of[s] >= 0:
                self._trend(s, t, v, out)
            if table.frozen_ms[s] > 0:
                self._frozen(s, t, v, out)
        if table.maint_ms[s] > 0 and q not in PASS:
            self._maintenance(s, t, q, out)
        if table.calib_ms[s] == 0 and self.level[s][CALIBRATION_DUE] and q not in PASS:
            self._set(s, t, math.nan, CALIBRATION_DUE, 0, out)  # turned off: cleared
        elif table.calib_ms[s] > 0 and q not in PASS:  # calibration due (`alerts.calibration`)
            at = t if self.calib_at[s] == NO_TS else self.calib_at[s]
            due = q != Quality.CALIBRATION and t - at >= table.calib_ms[s]
            self.calib_at[s] = t if q == Quality.CALIBRATION else at
            self._set(s, t, (t - at) / DAY_MS, CALIBRATION_DUE, int(due), out)
        if valued or q == Quality.SENSOR_FAULT:  # levels or none
            self._set(s, t, v, FAULT, int(q == Quality.SENSOR_FAULT), out)
        timeout = int(table.no_data[s])
        if bool(table.loses[s]):  # levels, a no-data time, or a verification's feedback
            if q in _LOSS:
                self._set(s, t, v, NO_DATA, 1, out)
            else:
                last = self.last_data[s]
                if (
                    self.level[s][NO_DATA] == 0
                    and timeout > 0
                    and last != NO_TS
                    and t - last > timeout
                ):
                    self._set(s, last + timeout, math.nan, NO_DATA, 1, out)
                self._set(s, t, v, NO_DATA, 0, out)
                self.last_data[s] = t
        if valued:
            self.last_value[s] = v
            feed.setdefault(s, []).append((t, v))
        self.last_ts[s] = t

    def _votes(
        self,
        changes: Changes,
        above_before: list[int],
        out: list[Row],
        level_before: dict[int, list[int]],
    ) -> list[Row]:
        """Judge each voting group on the number of its members voting (`vote_readings`)."""
        groups = self._groups()
        rows = vote_readings(
            self.table, groups, self.last_ts, changes, above_before, out, level_before
        )
        return self._judge_groups(rows)

    def _groups(self) -> dict[int, list[int]]:
        """The voting groups' members by group, made once per table."""
        cached = self._group_cache
        if cached is not None and cached[0] is self.table:
            return cached[1]
        found = group_members(self.table.group_of)
        self._group_cache = (self.table, found)
        return found

    def _fresh_groups(self, batch: set[int]) -> list[Row]:
        """Judge each group of the batch's sensors never judged whose members have data
        (`fresh_group_readings`)."""
        groups = self._groups()
        rows = fresh_group_readings(self.table, groups, self.last_ts, self.level, batch)
        return self._judge_groups(rows)

    def _judge_groups(self, rows: list[GroupReading]) -> list[Row]:
        """The groups' readings (group, ts, members voting) judged as their own."""
        if not rows:
            return []
        return self.evaluate(
            np.array([r[0] for r in rows], np.int32),
            np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows], np.float64),
            np.zeros(len(rows), np.uint8),
            None,
            groups=True,
        )


def reference_evaluate(
    table: RuleTable,
    active: list[list[bool]],
    level: list[list[int]],
    last_ts: list[int],
    sensor: npt.NDArray[np.int32],
    ts: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> list[Row]:
    """The old entry point (levels only, state passed as lists and updated in place)."""
    core = ReferenceCore(table)
    core.active = active
    core.raw = [list(row) for row in active]
    core.level = [[*row[:2], 0, 0, 0] for row in level]
    core.last_ts = last_ts
    out = core.evaluate(sensor, ts, value, quality)
    for row, new in zip(level, core.level, strict=True):
        row[:2] = new[:2]
    return out
