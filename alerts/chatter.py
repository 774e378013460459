"""A point's changes in one batch beyond a bound, recorded as their first, peak and last.

One telemetry message may carry many readings of a sensor (a gateway's backlog, or a flood:
helper-107 published 100,000 readings of one LEL head alternating 60 and 1 %LEL, 50,000 alarms
that held every tenant's judging for minutes). The core judges every reading; the alarm book
records, for a point (sensor and side) with more than `CHATTER_MAX` changes in one batch, only
the first change, the first to reach the highest level of the batch, and the last, the last
saying how many there were: the alarm is raised, reaches its peak and ends as the readings say,
and the journal and the notifications are not flooded. The readings themselves are all stored.
"""

from __future__ import annotations

import numpy as np

from alerts.state import Transitions

__all__ = ["CHATTER_MAX", "collapse"]

CHATTER_MAX = 16  # changes of one point in one batch recorded one by one


def collapse(transitions: Transitions) -> tuple[Transitions, dict[int, str]]:
    """The transitions to record and, by their new position, what the last of a collapsed
    point's says."""
    n = len(transitions)
    if n <= CHATTER_MAX:
        return transitions, {}
    point = transitions.sensor.astype(np.int64) * 256 + transitions.side
    keys, counts = np.unique(point, return_counts=True)
    many = keys[counts > CHATTER_MAX]
    if not many.size:
        return transitions, {}
    keep = np.ones(n, dtype=np.bool_)
    last_of: dict[int, tuple[int, int, int]] = {}  # kept row -> (changes, first ts, last ts)
    for key in many.tolist():
        rows = np.flatnonzero(point == key)
        after = transitions.after[rows]
        peak = rows[int(np.argmax(after))]  # the first to reach the highest
        keep[rows] = False
        keep[[rows[0], peak, rows[-1]]] = True
        last_of[int(rows[-1])] = (
            int(rows.size),
            int(transitions.ts[rows[0]]),
            int(transitions.ts[rows[-1]]),
        )
    kept = np.flatnonzero(keep)
    position = {int(r): k for k, r in enumerate(kept.tolist())}
    said = {
        position[r]: (
            f"抖动 chattering: {count} changes of this point in one batch "
            f"({(last - first) / 1000:g} s of event time), recorded as their first, peak and last"
        )
        for r, (count, first, last) in last_of.items()
    }
    out = Transitions(
        transitions.sensor[kept],
        transitions.ts[kept],
        transitions.value[kept],
        transitions.side[kept],
        transitions.before[kept],
        transitions.after[kept],
    )
    return out, said
