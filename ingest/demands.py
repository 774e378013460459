"""Protective actions: those demanded while the hub was away from its saved state, and the
record of those confirmed.

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

A demand met by a batch is journaled on the alarm that demanded it (`alerts.confirmations`): when
and with what values the feedbacks confirmed it (`before_batch`, then `confirmed`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from alerts.alarms import AlarmBook
from alerts.confirmations import Confirmation
from alerts.evaluate import CoreState
from alerts.state import NO_TS
from alerts.table import RuleTable
from alerts.verifyplan import VerifyPlan
from ingest.store.base import ReadingBatch, StoreError, TimeSeriesStore
from telemetry.quality import MEASURED

__all__ = ["Demand", "before_batch", "confirm", "confirmed", "rearm"]

Before = tuple[np.ndarray, np.ndarray]  # the plans' met flags, their feedbacks' last values

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
    `confirm` finds otherwise. One whose failure the journal told already (its `action_failed`
    raised, then cleared by the action seen done late) is armed met: the store's readings as of
    its deadline would fail it again, a second alarm for one failure."""
    out = []
    for plan, began, told in book.unarmed_demands(state):
        demand = Demand(plan, began, began + plan.within_ms)
        state.deadline[plan.sensor] = demand.deadline
        state.met[plan.sensor] = told
        if told:
            log.info(
                "a protective action demanded at %d by sensor %d, unknown to the saved state, "
                "failed and was seen done before: armed met",
                began,
                plan.sensor,
            )
            continue
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
                good = [v for _, v, q in rows if q in MEASURED and np.isfinite(v)]
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


def before_batch(table: RuleTable, state: CoreState) -> Before | None:
    """What `confirmed` compares with: taken before the core judges a batch in place."""
    if not table.verify:
        return None
    return state.met[table.verify_sensor].copy(), state.last_value[table.verify_pair_feedback]


def confirmed(
    table: RuleTable, before: Before | None, state: CoreState, batch: ReadingBatch
) -> list[Confirmation]:
    """The demands the batch met: each with when every feedback confirmed it (the event time
    of the last of their confirming readings; the demand's start for one that confirmed
    already) and their values then."""
    if before is None:
        return []
    met_before, feed_before = before
    out = []
    newly = state.met[table.verify_sensor] & ~met_before
    for k in np.flatnonzero(newly).tolist():
        plan = table.verify[k]
        deadline = int(state.deadline[plan.sensor])
        if deadline == NO_TS:
            continue  # met and ended within the batch
        began = deadline - plan.within_ms
        at, values = began, []
        for j, f in enumerate(plan.feedbacks):
            was = float(feed_before[int(table.verify_pair_ptr[k]) + j])
            if plan.satisfied(was):
                values.append(was)
                continue
            mine = (batch.sensor == f) & np.isin(batch.quality, MEASURED)
            ts, vs = batch.ts[mine], batch.value[mine]
            ok = np.flatnonzero([plan.satisfied(float(v)) for v in vs] if vs.size else [])
            if not ok.size:  # confirmed as the core saw it; the batch says no more
                values.append(float(state.last_value[f]))
                continue
            first = int(ok[np.argmin(ts[ok])])
            at = max(at, int(ts[first]))
            values.append(float(vs[first]))
        out.append(Confirmation(plan, began, at, tuple(values)))
    return out
