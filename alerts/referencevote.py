"""The voting groups of `alerts.reference`'s `ReferenceCore`: the readings a group is judged on,
the number of its members voting after each change of theirs, which the core then judges as the
group's own readings (the semantics are in `alerts.vote`). Split from `alerts.reference`, the
code moved as it was, the core's lists passed in. Not for production use.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from alerts.state import NO_TS
from alerts.table import ABOVE, FAULT, NO_DATA, RuleTable
from alerts.verify import Row

__all__ = ["Changes", "GroupReading", "fresh_group_readings", "group_members", "vote_readings"]

# sensor (or -1 - sensor: its side below): the batch's changes of its level, (ts, before, after)
Changes = dict[int, list[tuple[int, int, int]]]
GroupReading = tuple[int, int, float]  # group (a sensor index), ts, members voting


def group_members(group_of: npt.NDArray[np.int64]) -> dict[int, list[int]]:
    """The voting groups' members by group (`RuleTable.group_of`)."""
    found: dict[int, list[int]] = {}
    for m, g in enumerate(group_of.tolist()):
        if g >= 0:
            found.setdefault(g, []).append(m)
    return found


def vote_readings(
    table: RuleTable,
    groups: dict[int, list[int]],
    last_ts: list[int],
    changes: Changes,
    above_before: list[int],
    out: list[Row],
    level_before: dict[int, list[int]],
) -> list[GroupReading]:
    """Each voting group on the number of its members voting, after each change: at its level
    above; for a group that counts failed members, or in sensor fault or without data (`out`:
    the batch's transitions in output order; `level_before`: the levels before the batch)."""
    rows: list[GroupReading] = []
    for g, members in sorted(groups.items()):
        need = int(table.vote_level[g])
        if table.fails_vote[members[0]]:
            rows.extend(_failed_votes(g, members, need, last_ts, out, level_before))
            continue
        if not any(m in changes for m in members):
            continue
        count = sum(above_before[m] >= need for m in members)
        events = sorted(
            (max(t, last_ts[g] + 1), m, int(after >= need) - int(before >= need))
            for m in members
            for t, before, after in changes.get(m, [])
        )
        for t, _, delta in events:
            if delta:
                count += delta
                rows.append((g, t, float(count)))
    return rows


def _failed_votes(
    g: int,
    members: list[int],
    need: int,
    last_ts: list[int],
    out: list[Row],
    level_before: dict[int, list[int]],
) -> list[GroupReading]:
    """The readings of a group that counts failed members (see `vote_readings`)."""

    def votes(lv: list[int]) -> bool:
        return lv[ABOVE] >= need or lv[FAULT] > 0 or lv[NO_DATA] > 0

    mine = [r for r in out if r[0] in members and r[3] in (ABOVE, FAULT, NO_DATA)]
    if not mine:
        return []
    cur = {m: list(level_before[m]) for m in members}
    count = sum(votes(cur[m]) for m in members)
    events = []
    for s, t, _, side, _, after in mine:
        was = votes(cur[s])
        cur[s][side] = after
        if votes(cur[s]) != was:
            events.append((max(t, last_ts[g] + 1), s, int(votes(cur[s])) - int(was)))
    rows = []
    for t, _, delta in sorted(events):
        count += delta
        rows.append((g, t, float(count)))
    return rows


def fresh_group_readings(
    table: RuleTable,
    groups: dict[int, list[int]],
    last_ts: list[int],
    level: list[list[int]],
    batch: set[int],
) -> list[GroupReading]:
    """Each group of the batch's sensors never judged whose members have data, on the members
    voting now at their latest time (`alerts.vote.fresh_groups`)."""
    rows: list[GroupReading] = []
    mine = {int(table.group_of[s]) for s in batch if 0 <= s < table.size}
    mine.discard(-1)
    if not mine:
        return []
    for g, members in sorted(groups.items()):
        if g not in mine:
            continue
        last = max(last_ts[m] for m in members)
        if last_ts[g] != NO_TS or last == NO_TS:
            continue
        need = int(table.vote_level[g])
        count = 0
        for m in members:
            lv = level[m]
            failed = bool(table.fails_vote[m]) and (lv[FAULT] > 0 or lv[NO_DATA] > 0)
            count += int(lv[ABOVE] >= need or failed)
        rows.append((g, last, float(count)))
    return rows
