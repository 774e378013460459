"""k-of-n voting groups: synthetic readings (the number of members at the group's level) that
the core judges like a sensor's, in a second pass."""

from __future__ import annotations

import numpy as np

from alerts.segments import by_sensor_time, distinct, segment_starts
from alerts.state import I64, NO_TS, CoreState, Part, Readings
from alerts.table import ABOVE, FAULT, NO_DATA, RuleTable

__all__ = ["batch_groups", "fresh_groups", "group_readings", "vote_seed"]


_FEW = 4096  # member readings in a batch up to which only their groups are counted

# per group: the number of its members at the group's level. (groups, counts): of those groups
# (sorted); (None, counts): of every group, by sensor index
Seed = tuple[I64 | None, I64]


def _members(table: RuleTable, g: I64) -> tuple[I64, I64, I64]:
    """The members of the groups `g` (each has some), group after group; how many each has;
    where each group's start among them."""
    lo, n = table.vote_ptr[g], table.vote_ptr[g + 1] - table.vote_ptr[g]
    starts = np.cumsum(n) - n
    members = table.vote_members[np.repeat(lo - starts, n) + np.arange(int(n.sum()))]
    return members, n, starts


def batch_groups(table: RuleTable, sensor: I64) -> I64:
    """The groups of the batch's readings of `sensor` that are members (one per reading, in
    input order): what `fresh_groups` and `vote_seed` start from."""
    g = table.group_of[sensor]
    groups: I64 = g[g >= 0]
    return groups


def vote_seed(table: RuleTable, state: CoreState, sensor: I64, g: I64 | None = None) -> Seed | None:
    """The members at their group's level before a batch of readings of `sensor`, for the
    groups those readings can move (a small batch costs no pass over every member); `g`: their
    `batch_groups` when known."""
    if not table.vote_members.shape[0]:
        return None
    g = batch_groups(table, sensor) if g is None else g
    if not g.shape[0]:
        return None
    if g.shape[0] > _FEW:
        groups = table.vote_groups
        at = state.level[:, ABOVE][table.vote_members] >= table.vote_level[groups]
        return None, np.bincount(groups, weights=at, minlength=table.size).astype(np.int64)
    g = distinct(g)
    members, n, starts = _members(table, g)
    at = state.level[:, ABOVE][members] >= np.repeat(table.vote_level[g], n)  # (a column's)
    return g, np.add.reduceat(at.astype(np.int64), starts)


def group_readings(
    table: RuleTable,
    seed: Seed | None,
    level_parts: list[Part],
    state: CoreState,
    parts: list[Part],
    new: CoreState,
) -> Readings | None:
    """Readings of the voting groups: at each change of a member's vote, the number of members
    voting (ordered by group, time, member). A member votes when at its group's level above, or
    (a group that counts failed members) when in sensor fault or without data; `parts` are all
    the batch's transitions so far and `new` the state after them. A change is judged on arrival:
    at its event time, or 1 ms after the group's last judged time when that is later, so that a
    member's change older than another's is counted, not late."""
    rows = [] if seed is None else _level_deltas(table, seed, level_parts)
    if table.counts_failed:
        rows.extend(_failed_deltas(table, parts, new))
    if not rows:
        return None
    g, cs, ct, delta, base = (np.concatenate([r[i] for r in rows]) for i in range(5))
    ct = np.maximum(ct, new.last_ts[g] + 1)  # (`new`: a fresh group judged first, `fresh_groups`)
    order = np.lexsort((cs, ct, g))
    g, ct, delta, base = g[order], ct[order], delta[order], base[order]
    total = np.cumsum(delta)
    first = np.maximum.accumulate(np.where(segment_starts(g), np.arange(g.shape[0]), 0))
    count = total - (total[first] - delta[first]) + base
    return Readings(
        g.astype(np.int32), ct, count.astype(np.float64), np.zeros(g.shape[0], dtype=np.uint8)
    )


def fresh_groups(
    table: RuleTable, state: CoreState, sensor: I64, g: I64 | None = None
) -> Readings | None:
    """A reading of each group of the batch's sensors (`sensor`; `g`: their `batch_groups` when
    known) never judged yet whose members have data: the number of its members voting now, at
    its members' latest time. A group is
    otherwise judged only when a member's vote changes, so a group added (or made to count
    failed members) by a reload, with two of its three detectors already failed (sending fault
    readings), stayed silent for as long as they did (helper-118). Only the batch's groups: a
    pass over every group each batch cost a small batch 50 %."""
    g = batch_groups(table, sensor) if g is None else g
    if not g.shape[0]:
        return None
    g = g[state.last_ts[g] == NO_TS]  # (before the distinct ones: mostly none are left)
    if not g.shape[0]:
        return None
    g = distinct(g)
    members, n, starts = _members(table, g)
    lv = state.level[members]
    need = np.repeat(table.vote_level[g], n)
    failed = table.fails_vote[members] & ((lv[:, FAULT] > 0) | (lv[:, NO_DATA] > 0))
    count = np.add.reduceat((lv[:, ABOVE] >= need) | failed, starts)
    last = np.maximum.reduceat(state.last_ts[members], starts)
    heard = last != NO_TS
    if not heard.any():
        return None
    g, last, count = g[heard], last[heard], count[heard]
    return Readings(
        g.astype(np.int32), last, count.astype(np.float64), np.zeros(g.shape[0], dtype=np.uint8)
    )


Deltas = tuple[I64, I64, I64, I64, I64]  # group, member, time, change of the vote, group's seed


def _level_deltas(table: RuleTable, seed: Seed, level_parts: list[Part]) -> list[Deltas]:
    """The vote changes of the members of the groups that count levels only: each change of a
    member's level above across its group's level."""
    above = [p for p in level_parts if isinstance(p[3], int) and p[3] == ABOVE]
    if not above:
        return []
    cs, ct, _, _, cb, ca = above[0]
    g = table.group_of[cs]
    sel = np.flatnonzero((g >= 0) & ~table.fails_vote[cs])
    if not sel.shape[0]:
        return []
    g, cs, ct = g[sel], cs[sel], ct[sel]
    need = table.vote_level[g]
    delta = (ca[sel] >= need).astype(np.int64) - (cb[sel] >= need)
    k = np.flatnonzero(delta)
    if not k.shape[0]:
        return []
    g, cs, ct, delta = g[k], cs[k], ct[k], delta[k]
    keys, counts = seed
    base = counts[g] if keys is None else counts[np.searchsorted(keys, g)]
    return [(g, cs, ct, delta, base)]


_VOTING_SIDES = (ABOVE, FAULT, NO_DATA)


def _failed_deltas(table: RuleTable, parts: list[Part], new: CoreState) -> list[Deltas]:
    """The vote changes of the members of the groups that count failed members: the
    transitions of their level above, fault and no-data sides, in the order of the core's
    output, each side's level carried from row to row; a member's levels before the batch are
    its first transition's `before` on each side (none: its level now, unchanged)."""
    pick = []
    for s, t, _, side, b, a in parts:
        sd = np.broadcast_to(np.asarray(side), s.shape)
        m = np.flatnonzero(table.fails_vote[s] & np.isin(sd, _VOTING_SIDES))
        if m.shape[0]:
            pick.append((s[m], t[m], sd[m].astype(np.int64), b[m], a[m]))
    if not pick:
        return []
    s, t, sd, b, a = (np.concatenate([p[i] for p in pick]) for i in range(5))
    order = by_sensor_time(s, t, sd)
    s, t, sd, b, a = s[order], t[order], sd[order], b[order], a[order]
    first = segment_starts(s)
    starts = np.flatnonzero(first)
    seg = np.cumsum(first) - 1
    k = np.arange(s.shape[0])
    members = s[starts]
    levels, before = [], []
    for side in _VOTING_SIDES:
        on = sd == side
        # the member's level on the side before the batch: its first row's `before` there
        at = np.where(on, k, s.shape[0])
        first_on = np.minimum.reduceat(at, starts)
        found = first_on < s.shape[0]
        init = new.level[members, side].astype(np.int64)
        init[found] = b[first_on[found]]
        # at each row: the `after` of its last row on the side, else the level before
        last = np.where(on, k, -1)
        np.maximum.accumulate(last, out=last)
        mine = last >= starts[seg]
        levels.append(np.where(mine, a[np.maximum(last, 0)], init[seg]))
        before.append(init)
    g_row = table.group_of[s]
    need = table.vote_level[g_row]
    vote = (levels[0] >= need) | (levels[1] > 0) | (levels[2] > 0)
    need0 = table.vote_level[table.group_of[members]]
    vote0 = (before[0] >= need0) | (before[1] > 0) | (before[2] > 0)
    prev = np.empty_like(vote)
    prev[1:] = vote[:-1]
    prev[starts] = vote0
    delta = vote.astype(np.int64) - prev
    rows = np.flatnonzero(delta)
    if not rows.shape[0]:
        return []
    # each group's members voting before the batch: those with rows as found, the others now
    groups = distinct(g_row)
    all_m, n, offs = _members(table, groups)
    lv = new.level[all_m]
    need_m = np.repeat(table.vote_level[groups], n)
    voting = (lv[:, ABOVE] >= need_m) | (lv[:, FAULT] > 0) | (lv[:, NO_DATA] > 0)
    known = np.full(table.size, -1, dtype=np.int64)
    known[members] = vote0
    was = known[all_m]
    voting = np.where(was >= 0, was, voting).astype(np.int64)
    base_g = np.add.reduceat(voting, offs) if offs.shape[0] else np.zeros(0, np.int64)
    g = g_row[rows]
    return [(g, s[rows], t[rows], delta[rows], base_g[np.searchsorted(groups, g)])]
