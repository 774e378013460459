"""The deadlines of hidden-danger items (`alerts.hazardflow`) as alarms: `hazard_overdue` while
an item is past its rectification deadline and not closed (`overdue_since`), and
`hazard_review_overdue` while its review request waits beyond the 10 days the centre has for the
on-site acceptance (`review_overdue_since`). Yellow (level 1) for a general item, orange (2) for
a major one. One of each kind per item at most (the alarm point `hazard:<id>`, rule `hazard`),
written through the alarm rows as every alarm is (journaled, notified, acknowledged). The hub's
clock judges them (`step`, on the dispatcher's tick, every `CHECK_MS`), and a step taken through
the API at once (`judge_item`). Their verdict comes from the state database alone, so a restart
raises nothing twice."""

from __future__ import annotations

import math
import sqlite3

from alerts.alarmchange import AlarmRows, cst
from alerts.alarmevent import AT_LEVEL, HAZARD_RULE, AlarmBatch, AlarmEvent
from alerts.gatewayalarms import NORMAL
from alerts.hazardflow import DAY_MS, HazardItem, overdue_since, review_overdue_since
from alerts.hazardrules import open_from_alarms
from alerts.hazards import open_items
from alerts.kinds import HAZARD_OVERDUE, HAZARD_REVIEW_OVERDUE
from alerts.statedb import StateDB
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry

__all__ = ["CHECK_MS", "HazardAlarms", "hazard_point"]

CHECK_MS = 60_000  # the items are judged this often on the clock's tick (and at each step)
SANE_MS = 1_577_836_800_000  # a clock before 2020 is wrong: it judges nothing
_SIDES = (HAZARD_OVERDUE, HAZARD_REVIEW_OVERDUE)
_OVERDUE_ACTION = (
    "隐患整改超期: 企业完成整改并申请验收, 或监管部门延期 the item is past its rectification "
    "deadline: rectify it and request the review, or the centre extends the deadline"
)
_REVIEW_ACTION = (
    "隐患验收超期: 监管部门应在申请后10日内组织现场验收 the review request waits beyond 10 days: "
    "the centre accepts or rejects the rectification on site"
)


def hazard_point(hazard_id: int) -> str:
    """The alarm point (the alarm's `sensor`) of an item's deadline alarms."""
    return f"hazard:{hazard_id}"


def _described(side: int, level: int) -> tuple[str, str, str]:
    if level == 0:
        return NORMAL
    grade = "major" if level == 2 else "general"
    tier = "orange" if level == 2 else "yellow"
    if side == HAZARD_OVERDUE:
        return f"{grade}_overdue", tier, _OVERDUE_ACTION
    return f"{grade}_review_overdue", tier, _REVIEW_ACTION


def _said(item: HazardItem, side: int, level: int) -> str:
    """The journal's words for a change of the item's alarm of `side`."""
    what = f"隐患 item {item.id} ({item.grade}, {item.status}): {item.description[:80]}"
    if level == 0:
        return f"{what}; 已处理 no longer overdue"
    if side == HAZARD_OVERDUE:
        assert item.deadline is not None
        return f"隐患整改超期 rectification overdue: deadline {cst(item.deadline)}; {what}"
    assert item.requested_at is not None
    return (
        f"隐患验收超期 review overdue: requested {cst(item.requested_at)}, not decided "
        f"within 10 days; {what}"
    )


class HazardAlarms(AlarmRows):
    def __init__(
        self, db: StateDB, registry: Registry, disposal: DisposalSpec | None = None
    ) -> None:
        super().__init__(registry, disposal)
        self._db = db
        self._checked: int | None = None  # the hub's clock at the last judgement

    def step(self, now: int) -> list[AlarmEvent]:
        """On the clock's tick: judge every item at the first tick and when `CHECK_MS` have
        passed since the last judgement (a step through the API judges its item at once).
        Raise AlarmStoreError."""
        if self._checked is not None and 0 <= now - self._checked < CHECK_MS:
            return []
        events = self.judge(now)
        self._checked = now
        return events

    def judge(self, now: int) -> list[AlarmEvent]:
        """Raise, move or clear each item's deadline alarms as the item says at `now` (the
        hub's clock), in one transaction. A clock before 2020 judges nothing."""
        if now < SANE_MS:
            return []
        with self._db.transaction() as con:
            active = con.execute(
                "SELECT sensor FROM alarms WHERE state = 'active' AND rule = ? AND side IN (?, ?)",
                (HAZARD_RULE, *_SIDES),
            ).fetchall()
            ids = [int(str(r[0]).partition(":")[2]) for r in active]
            open_from_alarms(con, self._registry, now)  # (the configured alarm -> hazard rules)
            items = open_items(con, now, ids)
            if not items:
                return []
            work = AlarmBatch.over(self._db, con, {hazard_point(i.id) for i in items}, now)
            for item in items:
                self._item(work, item, now)
            return work.write(self._db, self._disposal)

    def judge_item(self, con: sqlite3.Connection, item: HazardItem, now: int) -> list[AlarmEvent]:
        """Judge one item's alarms as it is after a step, in the caller's transaction."""
        if now < SANE_MS:
            return []
        work = AlarmBatch.over(self._db, con, {hazard_point(item.id)}, now)
        self._item(work, item, now)
        return work.write(self._db, self._disposal)

    def _item(self, work: AlarmBatch, item: HazardItem, now: int) -> None:
        point = hazard_point(item.id)
        for side, since in (
            (HAZARD_OVERDUE, overdue_since(item, now)),
            (HAZARD_REVIEW_OVERDUE, review_overdue_since(item, now)),
        ):
            row = work.open.get((point, HAZARD_RULE, side))
            was = 0 if row is None else int(row[AT_LEVEL])
            level = 0 if since is None else 2 if item.grade == "major" else 1
            if level == was:
                continue
            # a raise is stamped when the deadline passed; a clear or a re-grade by the step
            # that made it (never before the raise: `_change`)
            ts = since if since is not None and row is None else max(item.updated_at, 0)
            days = math.nan if since is None else round(max(0, now - since) / DAY_MS, 2)
            key = (item.tenant, item.site, "", point, HAZARD_RULE, side)
            said = _said(item, side, level)
            self._change(work, key, level, _described(side, level), ts, days, now, comment=said)
