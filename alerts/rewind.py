"""The lateness window of `alerts.reference`'s `ReferenceCore`: a late reading's sensor judged
again from its checkpoint (`_rewind`), and the last readings kept with the older ones folded into
the checkpoint (`_keep`); the semantics are in `alerts.lateness`. Split from `alerts.reference`,
whose `ReferenceCore` extends `Rewinding` and sets up the attributes declared here; the code moved
as it was. Not for production use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from alerts.table import ABOVE, ACTION, BELOW, SIDES, RuleTable
from alerts.verify import Row

if TYPE_CHECKING:
    from alerts.reference import ReferenceCore

__all__ = ["Rewinding"]


class Rewinding:
    """The lateness window of `ReferenceCore`, which sets up every attribute declared here."""

    table: RuleTable
    raw: list[list[bool]]
    active: list[list[bool]]
    run_start: list[list[int]]
    run_count: list[list[int]]
    level: list[list[int]]
    last_ts: list[int]
    last_data: list[int]
    last_value: list[float]
    frozen_since: list[int]
    maint_since: list[int]
    calib_at: list[int]
    hist: list[list[tuple[int, float]]]
    _below_plans: set[int]  # the sensors whose verification demands on the side below
    ring: list[list[tuple[int, float, int]]]
    ck: ReferenceCore | None
    told: dict[tuple[int, int], int]
    _step: Callable[
        [
            int,
            int,
            float,
            int,
            list[Row],
            dict[int, list[tuple[int, int, int]]],
            dict[int, list[tuple[int, float]]],
        ],
        None,
    ]
    _silence: Callable[[int, int, list[Row]], None]

    def _restore(self, s: int, ck: ReferenceCore, hist: list[tuple[int, float]]) -> None:
        """Set sensor `s` back to its checkpoint (all but the ACTION side), its trend buffer to
        the readings of `hist` at or before the checkpoint."""
        self.raw[s] = list(ck.raw[s])
        self.active[s] = list(ck.active[s])
        self.run_start[s] = list(ck.run_start[s])
        self.run_count[s] = list(ck.run_count[s])
        self.level[s] = [ck.level[s][d] if d != ACTION else self.level[s][d] for d in range(SIDES)]
        self.last_ts[s], self.last_data[s] = ck.last_ts[s], ck.last_data[s]
        self.last_value[s] = ck.last_value[s]
        self.frozen_since[s] = ck.frozen_since[s]
        self.maint_since[s] = ck.maint_since[s]
        self.calib_at[s] = ck.calib_at[s]
        self.hist[s] = [x for x in hist if x[0] <= ck.last_ts[s]]

    def _run(
        self,
        s: int,
        readings: list[tuple[int, float, int]],
        hist: list[tuple[int, float]],
        now: int | None,
    ) -> list[Row]:
        """Sensor `s` from its checkpoint over `readings`, the clock checked at the end."""
        assert self.ck is not None
        self._restore(s, self.ck, hist)
        out: list[Row] = []
        for t, v, q in readings:
            self._step(s, t, v, q, out, {}, {})
        if now is not None:
            self._silence(s, now, out)
        out.sort(key=lambda r: (r[1], r[3]))
        return out

    def _rewind(
        self,
        s: int,
        batch: list[tuple[int, float, int]],
        t0: int,
        hist: list[tuple[int, float]],
        now: int | None,
        out: list[Row],
        changes: dict[int, list[tuple[int, int, int]]],
    ) -> None:
        """Judge sensor `s` again from its checkpoint with its batch readings (see
        `alerts.lateness` for the transitions that come out)."""
        live = list(self.level[s])
        old = self._run(s, self.ring[s], hist, now)
        new = self._run(s, _merged(self.ring[s], batch), hist, now)
        fin = self.level[s]
        for side in range(SIDES):
            if side == ACTION:
                continue
            mine = [r for r in new if r[3] == side]
            known = {(r[1], r[4], r[5]) for r in old if r[3] == side}
            told = self.told.get((s, side))  # the last that came out (`CoreState.told`)
            cur = live[side]
            for r in mine:
                if (r[1], r[4], r[5]) in known or r[5] == cur:
                    continue
                if told is not None and r[1] <= told:  # before what a consumer was told
                    continue
                out.append((s, r[1], r[2], side, cur, r[5]))
                if side == ABOVE:
                    changes.setdefault(s, []).append((r[1], cur, r[5]))
                elif side == BELOW and s in self._below_plans:  # as `_judge` keeps them
                    changes.setdefault(-1 - s, []).append((r[1], cur, r[5]))
                cur = r[5]
            if cur != fin[side]:
                was = [r for r in old if r[3] == side]
                t, v = t0, math.nan
                if was:
                    t, v = was[-1][1], was[-1][2]
                if mine and (not was or mine[-1][1] >= was[-1][1]):
                    t, v = mine[-1][1], mine[-1][2]
                out.append((s, t, v, side, cur, fin[side]))
                if side == ABOVE:
                    changes.setdefault(s, []).append((t, cur, fin[side]))
                elif side == BELOW and s in self._below_plans:
                    changes.setdefault(-1 - s, []).append((t, cur, fin[side]))

    def _keep(
        self,
        s: int,
        batch: list[tuple[int, float, int]],
        merge: bool,
        hist: list[tuple[int, float]],
    ) -> None:
        """Keep the sensor's last readings; fold the older ones into its checkpoint."""
        ck = self.ck
        assert ck is not None
        ring = _merged(self.ring[s], batch) if merge else self.ring[s] + batch
        excess = len(ring) - self.table.late_depth
        if excess > 0:
            ck.hist[s] = [x for x in hist if x[0] <= ck.last_ts[s]]
            for t, v, q in ring[:excess]:
                ck._step(s, t, v, q, [], {}, {})
            ring = ring[excess:]
        self.ring[s] = ring


def _merged(
    ring: list[tuple[int, float, int]], batch: list[tuple[int, float, int]]
) -> list[tuple[int, float, int]]:
    """The ring and the batch's readings by time; of equal times the batch's."""
    by_time = {r[0]: r for r in ring}
    by_time.update({r[0]: r for r in batch})
    return [by_time[t] for t in sorted(by_time)]
