"""Protective actions demanded while the hub was away from its saved state.

The analytics state is saved every 10 s; a hub killed within the seconds after an alarm reached a
level that demands a protective action (methane at the power-cut level: the face's feed must
read no power within 2 s; a crane's overload: the hoisting-up circuit cut) restarts with the
alarm's level rebuilt from the state database (`AlarmBook.restore`) but no demand: no check ever
started, and a limiter that failed to act was never said (helper-103, twice). At start the
demand is armed again from the alarm's journal (`AlarmBook.unarmed_demands`), its deadline
counted from when the level was reached, and met if the store's readings of every feedback
confirm it as of the deadline (what the killed hub judged and acknowledged is not sent again:
without this look a cut made in time would fail at the next feed reading). What the store does
not confirm is judged as any demand: failed at its deadline once a later reading or the clock
says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from alerts.alarms import AlarmBook
from alerts.evaluate import CoreState
from alerts.table import VerifyPlan
from ingest.store.base import StoreError, TimeSeriesStore
from telemetry.quality import Quality

__all__ = ["Demand", "confirm", "rearm"]

log = logging.getLogger(__name__)

# how far before the demand a feedback's last reading is looked for (its value as of then)
LOOKBACK_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Demand:
    plan: VerifyPlan
    began: int  # event time the level was reached
    deadline: int


def rearm(book: AlarmBook, state: CoreState) -> list[Demand]:
    """Arm, in `state`, the demands of active alarms it does not know of; they are unmet until
    `confirm` finds otherwise."""
    out = []
    for plan, began in book.unarmed_demands(state):
        demand = Demand(plan, began, began + plan.within_ms)
        state.deadline[plan.sensor] = demand.deadline
        state.met[plan.sensor] = False
        out.append(demand)
    return out


async def confirm(store: TimeSeriesStore, state: CoreState, demands: list[Demand]) -> None:
    """Mark met the demands the stored readings of every feedback confirm as of the deadline
    (each feedback's last good reading at or before it); say what was found."""
    for d in demands:
        plan = d.plan
        values = []
        try:
            for f in plan.feedbacks:
                rows = await store.readings(f, d.began - LOOKBACK_MS, d.deadline + 1)
                good = [v for _, v, q in rows if q in _VALUED and np.isfinite(v)]
                values.append(good[-1] if good else float("nan"))
        except StoreError as exc:
            log.warning(
                "a protective action demanded at %d by sensor %d, unknown to the saved state, "
                "is not checked against the store (%s): judged from the next readings",
                d.began,
                plan.sensor,
                exc,
            )
            continue
        met = all(plan.satisfied(v) for v in values)
        state.met[plan.sensor] = met
        log.info(
            "a protective action demanded at %d by sensor %d (deadline %d), unknown to the saved "
            "state, armed again: %s",
            d.began,
            plan.sensor,
            d.deadline,
            "confirmed by the stored readings" if met else "not confirmed yet",
        )


_VALUED = (int(Quality.GOOD), int(Quality.OUT_OF_RANGE))
