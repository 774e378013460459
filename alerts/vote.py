"""k-of-n voting groups: synthetic readings (the number of members at the group's level) that
the core judges like a sensor's, in a second pass."""

from __future__ import annotations

import numpy as np

from alerts.state import I64, CoreState, Part, Readings, segment_starts
from alerts.table import ABOVE, RuleTable

__all__ = ["group_readings", "vote_seed"]


_FEW = 4096  # member readings in a batch up to which only their groups are counted

# per group: the number of its members at the group's level. (groups, counts): of those groups
# (sorted); (None, counts): of every group, by sensor index
Seed = tuple[I64 | None, I64]


def vote_seed(table: RuleTable, state: CoreState, sensor: I64) -> Seed | None:
    """The members at their group's level before a batch of readings of `sensor`, for the
    groups those readings can move (a small batch costs no pass over every member)."""
    if not table.vote_members.shape[0]:
        return None
    g = table.group_of[sensor]
    g = g[g >= 0]
    if not g.shape[0]:
        return None
    ptr = table.vote_ptr
    if g.shape[0] > _FEW:
        groups = table.vote_groups
        at = state.level[table.vote_members, ABOVE] >= table.vote_level[groups]
        return None, np.bincount(groups, weights=at, minlength=table.size).astype(np.int64)
    g = np.unique(g)
    lo, n = ptr[g], ptr[g + 1] - ptr[g]  # every group has members
    starts = np.cumsum(n) - n
    members = table.vote_members[np.repeat(lo - starts, n) + np.arange(int(n.sum()))]
    at = state.level[members, ABOVE] >= np.repeat(table.vote_level[g], n)
    return g, np.add.reduceat(at.astype(np.int64), starts)


def group_readings(
    table: RuleTable, seed: Seed, level_parts: list[Part], state: CoreState
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
    keys, counts = seed
    count = total - (total[first] - delta[first])
    count += counts[g] if keys is None else counts[np.searchsorted(keys, g)]
    return Readings(
        g.astype(np.int32), ct, count.astype(np.float64), np.zeros(g.shape[0], dtype=np.uint8)
    )
