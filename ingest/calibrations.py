"""The last calibrations a hub does not know, taken from the time-series store before it judges.

Calibration due (`alerts.calibration`) counts a sensor's interval from its last calibration
reading, which the core's state holds (saved with the analytics state, or restored from an active
'calibration_due' alarm). Without it (an upgrade from a hub without the check, a state file lost
or reset, a sensor added to the configuration or given the check) the interval would count from
the sensor's next reading: a methane sensor calibrated 14 days ago raised only 15 days later,
after 29 days without a calibration. The stored readings have its calibrations: at start, and
after a configuration change, before anything is judged, the hub asks the store for the newest
calibration reading of every such sensor (`TimeSeriesStore.last_calibrations`, one query for all
of them) and takes them (`seed_calibrations`).

It looks back `LOOKBACK_INTERVALS` of their longest interval, newest first in spans that double
(1 day, then 1, 2, 4, 8 ... days further back), each asking only for the sensors not found yet:
InfluxDB reads the quality of every reading in a span (about a million a second on the test VM),
and a sensor calibrated on schedule is found within its interval. It stops at `LOOKUP_S`: what
was found is kept, and a sensor without a calibration found counts from its next reading, as
before. A store that does not answer (down, refusing) stops nothing either: that is said once.
"""

from __future__ import annotations

import asyncio
import logging

from alerts.calibration import (
    DAY_MS,
    lookback_ms,
    seed_calibrations,
    unknown_calibrations,
)
from alerts.state import CoreState
from alerts.table import RuleTable
from ingest.store.base import StoreError, TimeSeriesStore

__all__ = ["LOOKUP_S", "spans", "take_stored_calibrations"]

log = logging.getLogger(__name__)

# the longest the store is waited for (the hub's start, or a configuration change holding ingest)
LOOKUP_S = 20.0


def spans(now_ms: int, back_ms: int) -> list[tuple[int, int]]:
    """[start, end) spans from `now_ms` (and a day past it: a gateway's clock a little ahead)
    back to `now_ms - back_ms`, newest first, each as long as all the newer ones together (the
    first a day)."""
    out: list[tuple[int, int]] = []
    end, size, oldest = now_ms + DAY_MS, DAY_MS, now_ms - back_ms
    start = now_ms - size
    while True:
        start = max(start, oldest)
        out.append((start, end))
        if start <= oldest:
            return out
        end, size = start, (now_ms - start)
        start = end - size


async def take_stored_calibrations(
    store: TimeSeriesStore,
    table: RuleTable,
    state: CoreState,
    now_ms: int,
    *,
    timeout_s: float = LOOKUP_S,
) -> int:
    """Seed `state` (in place) with the stored last calibrations of the sensors it knows none
    of; how many were taken. Call it before the next batch is judged, with nothing judging
    meanwhile."""
    wanted = unknown_calibrations(table, state)
    if not wanted.size:
        return 0
    back = lookback_ms(table, wanted)
    left = set(wanted.tolist())
    taken, looked = 0, 0
    try:
        async with asyncio.timeout(timeout_s):
            for start, end in spans(now_ms, back):
                found = await store.last_calibrations(sorted(left), start, end)
                taken += seed_calibrations(state, found)
                left.difference_update(found)
                looked = now_ms - start
                if not left:
                    break
    except (StoreError, TimeoutError) as exc:
        log.warning(
            "the last calibrations of %d sensors were looked for in the store %g of %g days "
            "back (%s): %d found; the others' calibration intervals count from their next "
            "readings",
            wanted.size,
            looked / DAY_MS,
            back / DAY_MS,
            exc or f"no answer within {timeout_s:g} s",
            taken,
        )
        return taken
    log.info(
        "last calibrations taken from the store: %d of %d sensors without one known (looked "
        "back %g days); the others count from their next readings",
        taken,
        wanted.size,
        looked / DAY_MS,
    )
    return taken
