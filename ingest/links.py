"""The hub's time away from the broker, for the `Dispatcher` (which extends `LinkClock`): the
sensors judged on arrival (a feedback of a protective action, `alerts.verify`; a sensor with a
no-data timeout, `alerts.nodata`) and the vehicles (their offline, `alerts.vehicles.evaluate`)
must not count that time as their silence, since the broker or their gateway's spool may hold
their readings of it.

The hub is away from the broker from a session's end (`link_lost`) until the next connection
(`link_back`), and from its stop to its next start: a saved state carries the time it was saved
or, saved while away, the time the link was lost. At each connection each such sensor's grace or
timeout resumes where it stood when the hub went away (never past the connection); one never
heard yet counts as heard then, as does every one at a start without a saved state. The time
away is excused once and the time connected adds up, so neither a connection that keeps
dropping nor a hub that keeps restarting can hold a silence off for ever.
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from alerts.evaluate import CoreState
from alerts.state import NO_TS
from alerts.table import RuleTable
from alerts.vehicles.alarms import FleetAlarms

__all__ = ["LinkClock"]


class LinkClock:
    """The time away of `Dispatcher`, which sets up every attribute declared here."""

    state: CoreState
    table: RuleTable
    fleet: FleetAlarms
    _lock: asyncio.Lock
    # since when the hub has had no broker (its stop included: the saved state's time), None
    # while connected or at a start without a saved state
    _away_since: int | None

    async def _settle(self) -> None: ...

    def away_since(self, now: int) -> int:
        """The time a state saved at `now` carries: `now`, or when the link was lost."""
        return now if self._away_since is None else min(now, self._away_since)

    def link_lost(self, at: int) -> None:
        """The hub's session with the broker ended at `at` (kept if it was away already)."""
        if self._away_since is None:
            self._away_since = at

    async def link_back(self, at: int) -> None:
        """The hub is connected to the broker again at `at`: the time away is excused."""
        async with self._lock:
            # a fleet step of a cancelled flush may still run in its thread and would put back
            # the state it copied, without the shift made here
            await self._settle()
            since, self._away_since = self._away_since, None
            rows = self._heard_by_arrival()
            arrived = self.state.last_arrival
            heard = self.fleet.state.heard  # the vehicles' offline: `alerts.vehicles.evaluate`
            if since is None:  # a start without a saved state: every one heard now
                arrived[rows] = np.maximum(arrived[rows], at)
                np.maximum(heard, at, out=heard)
                return
            fresh = arrived[rows] == NO_TS
            arrived[rows[fresh]] = at
            never = heard == 0  # a state saved before vehicles kept it: heard now
            away = at - since
            if away > 0:
                known = rows[~fresh]
                arrived[known] = np.minimum(arrived[known] + away, at)
                np.minimum(heard + away, at, out=heard)
            heard[never] = at

    def _heard_by_arrival(self) -> npt.NDArray[np.int64]:
        """The sensors whose silence is judged on the hub's clock too."""
        t = self.table
        timed = np.arange(t.size, dtype=np.int64)[t.no_data_rows]
        return np.union1d(t.verify_pair_feedback.astype(np.int64), timed)
