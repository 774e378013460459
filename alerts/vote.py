"""k-of-n voting groups: synthetic readings (the number of members at the group's level) that
the core judges like a sensor's, in a second pass."""

from __future__ import annotations

import numpy as np

from alerts.state import I64, CoreState, Part, Readings, segment_starts
from alerts.table import ABOVE, RuleTable

__all__ = ["group_readings", "vote_seed"]


def vote_seed(table: RuleTable, state: CoreState) -> I64 | None:
    """Per group (sensor index): the number of its members at the group's level."""
    if not table.vote_level.any():
        return None
    members, groups = table.vote_members, table.vote_groups
    at = state.level[members, ABOVE] >= table.vote_level[groups]
    return np.bincount(groups, weights=at, minlength=table.size).astype(np.int64)


def group_readings(
    table: RuleTable, seed: I64, level_parts: list[Part], state: CoreState
) -> Readings | None:
    """Readings of the voting groups: at each change of a member's level above, the number of
    members at the group's level (ordered by group, time, member). A change is judged on
    arrival: at its event time, or 1 ms after the group's last judged time (in `state`) when
    that is later, so that a member's change older than another's is counted, not late."""
    above = [p for p in level_parts if isinstance(p[3], int) and p[3] == ABOVE]
    if not above:
        return None
    cs, ct, _, _, cb, ca = above[0]
    g = table.group_of[cs]
    sel = np.flatnonzero(g >= 0)
    if not sel.shape[0]:
        return None
    g, cs, ct = g[sel], cs[sel], ct[sel]
    need = table.vote_level[g]
    delta = (ca[sel] >= need).astype(np.int64) - (cb[sel] >= need)
    k = np.flatnonzero(delta)
    if not k.shape[0]:
        return None
    g, cs, ct, delta = g[k], cs[k], ct[k], delta[k]
    ct = np.maximum(ct, state.last_ts[g] + 1)
    order = np.lexsort((cs, ct, g))
    g, ct, delta = g[order], ct[order], delta[order]
    total = np.cumsum(delta)
    first = np.maximum.accumulate(np.where(segment_starts(g), np.arange(g.shape[0]), 0))
    count = total - (total[first] - delta[first]) + seed[g]
    return Readings(
        g.astype(np.int32), ct, count.astype(np.float64), np.zeros(g.shape[0], dtype=np.uint8)
    )
