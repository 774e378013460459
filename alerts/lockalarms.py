"""The `lock_test_overdue` alarm of a protective-action plan (`alerts.locktests`): raised on the
plan's sensor when its lock-out has gone its interval without a passed test (level 1, yellow),
or its newest test failed (level 2, orange); cleared by a passed test. One active per plan (its
sensor, rule and kind), written through the alarm rows as every alarm is (journaled, notified,
acknowledged); the hub's clock judges it (`step`, on the dispatcher's tick), and a test recorded
through the API at once (`record`). Its verdict comes from the state database alone, so a
restart raises nothing twice."""

from __future__ import annotations

import math
import sqlite3

from alerts.alarmchange import AlarmRows
from alerts.alarmevent import AT_LEVEL, AT_STARTED_TS, AlarmBatch, AlarmEvent
from alerts.errors import AlarmStoreError
from alerts.gatewayalarms import NORMAL
from alerts.kinds import LOCK_TEST
from alerts.locktests import (
    DAY_MS,
    FAILED,
    OVERDUE,
    SANE_MS,
    SOURCE_API,
    LockTest,
    find_test,
    first_seen,
    forget_plans,
    insert_test,
    plan_tests,
    set_interval,
    verdict,
)
from alerts.statedb import StateDB
from telemetry.notifyconfig import DisposalSpec
from telemetry.registry import Registry, SensorInfo

__all__ = ["CHECK_MS", "LockTestAlarms", "NotAPlanError"]

CHECK_MS = 60_000  # the plans are judged this often on the clock's tick (and at a new test)

# (the overdue action says the plan's interval: `_described`)
_OVERDUE_ACTION = (
    "闭锁测试超期: 测试甲烷电闭锁/风电闭锁并登记 test the lock-out (every {days:g} d, the plan's "
    "interval) and record the test"
)
_DESCRIBED = {
    OVERDUE: ("lock_test_overdue", "yellow", _OVERDUE_ACTION),
    FAILED: (
        "lock_test_failed",
        "orange",
        "闭锁测试未通过: 闭锁失效, 立即检修, 修复前停止该区域作业并切断非本安电源, 修复后重新测试 "
        "the lock-out failed its test: repair it; until then stop the work and cut the area's "
        "power; test again once repaired",
    ),
}
_UNPLANNED = "闭锁测试周期已取消 the plan has no lock-test interval any more"


def _described(level: int, every_days: float) -> tuple[str, str, str]:
    name, tier, action = _DESCRIBED.get(level, NORMAL)
    return name, tier, action.format(days=every_days) if level == OVERDUE else action


class NotAPlanError(LookupError):
    """The sensor has no protective-action plan (`verify:`) to test."""


class LockTestAlarms(AlarmRows):
    def __init__(
        self, db: StateDB, registry: Registry, disposal: DisposalSpec | None = None
    ) -> None:
        super().__init__(registry, disposal)
        self._db = db
        self._checked: int | None = None  # the hub's clock at the last judgement
        self._recorded = -1  # the state database's count of tests recorded then

    def plans(self) -> list[SensorInfo]:
        """The sensors whose plan has a lock-test interval."""
        return [s for s in self._registry.sensors if s.lock_test is not None]

    def step(self, now: int) -> list[AlarmEvent]:
        """On the clock's tick: judge every plan at the first tick (the tests recorded while
        the hub was stopped), when `CHECK_MS` have passed since the last judgement, or when a
        test was recorded since through the state database (`StateDB.lock_tests_recorded`: the
        hub's confirmations, the API). A tick with none of these reads nothing. Raise
        AlarmStoreError."""
        recorded = self._db.lock_tests_recorded  # (before the judgement: one after it counts)
        fresh = self._checked is not None and 0 <= now - self._checked < CHECK_MS
        if fresh and recorded == self._recorded:
            return []
        events = self.judge(now)
        self._checked, self._recorded = now, recorded
        return events

    def judge(self, now: int) -> list[AlarmEvent]:
        """Raise, move or clear each plan's alarm as its tests say at `now` (the hub's clock),
        and clear those of plans without an interval now, in one transaction. The plans gone
        are forgotten (`forget_plans`: added back, they count from then). A clock before 2020
        (`SANE_MS`, wrong) judges nothing."""
        plans = self.plans()
        if now < SANE_MS:
            return []
        with self._db.transaction() as con:
            forget_plans(con, {(p.tenant, p.id) for p in plans})
            active = con.execute(
                "SELECT sensor FROM alarms WHERE state = 'active' AND side = ?", (LOCK_TEST,)
            ).fetchall()
            points = {p.id for p in plans} | {str(r[0]) for r in active}
            if not points:
                return []
            work = AlarmBatch.over(self._db, con, points, now)
            for p in plans:
                self._plan(con, work, p, now)
            kept = {(p.id, p.rule, p.tenant, p.site, p.device) for p in plans}
            for (sensor, rule, side), row in list(work.open.items()):
                if side != LOCK_TEST or (sensor, rule, *row[1:4]) in kept:
                    continue
                key = (row[1], row[2], row[3], sensor, rule, LOCK_TEST)
                ts = max(now, int(row[AT_STARTED_TS]))
                self._change(work, key, 0, NORMAL, ts, math.nan, now, comment=_UNPLANNED)
            return work.write(self._db, self._disposal)

    def record(
        self,
        sensor: str,
        tenants: list[str] | None,
        ts: int,
        passed: bool,
        note: str,
        actor: str,
        now: int,
    ) -> tuple[LockTest, list[AlarmEvent], bool]:
        """Record a person's test of the plan of `sensor` (one of `tenants`' sensors, None:
        any) and judge the plan at once: a passed test clears its alarm, a failed one raises it
        (or keeps it, with the failure in its journal). The same test recorded again (plan,
        `ts`, result and `actor`) is not recorded twice: the first is returned, with no events
        and False (True: recorded now). Raise LookupError for a sensor not found (or another
        tenant's), NotAPlanError for one without a plan, AlarmStoreError."""
        info = self._registry.sensor(sensor)
        if info is None or (tenants is not None and info.tenant not in tenants):
            raise LookupError(sensor)
        if info.verify is None:
            raise NotAPlanError(sensor)
        with self._db.transaction() as con:
            found = find_test(con, info.tenant, info.id, ts, passed, actor)
            if found is not None:
                return found, [], False
            test = insert_test(
                self._db, con, info.tenant, info.id, ts, passed, note, actor, SOURCE_API, now
            )
            if test is None:  # (only the hub's own tests are recorded once)
                raise AlarmStoreError("the test was not recorded")
            if info.lock_test is None:
                return test, [], True
            work = AlarmBatch.over(self._db, con, {info.id}, now)
            changed = self._plan(con, work, info, now)
            events = work.write(self._db, self._disposal)
            if not changed and not passed:
                events += self._failure_said(con, info, test, now)
        return test, events, True

    def _plan(self, con: sqlite3.Connection, work: AlarmBatch, info: SensorInfo, now: int) -> bool:
        """Judge one plan into `work`; whether its alarm's level changes. A change the plan's
        interval made (judged with another before) is stamped `now` and says so."""
        assert info.lock_test is not None
        every = info.lock_test.every_days
        seen, was = first_seen(con, info.tenant, info.id, now)
        if was != every:
            set_interval(con, info.tenant, info.id, every)
        # (the tests made before the plan's first sight less its interval are another plan's:
        # removed and added back, or a sensor id reused; they stay in the list)
        last, passed = plan_tests(con, info.tenant, info.id, seen - round(every * DAY_MS))
        v = verdict(every, seen, last, passed, now)
        key = (info.tenant, info.site, info.device, info.id, info.rule, LOCK_TEST)
        row = work.open.get((info.id, info.rule, LOCK_TEST))
        level = 0 if row is None else int(row[AT_LEVEL])
        if v.level == level:
            return False
        ts, said = v.ts, v.said
        if was is not None and was != every:
            ts = now
            changed = f"闭锁测试周期改变 lock-test interval changed: every {was:g} d -> {every:g} d"
            said = f"{changed}; {v.said}" if v.level and v.said else changed
        ts = ts if row is None else max(ts, int(row[AT_STARTED_TS]))
        described = _described(v.level, every)
        self._change(work, key, v.level, described, ts, v.days, now, comment=said)
        return True

    def _failure_said(
        self, con: sqlite3.Connection, info: SensorInfo, test: LockTest, now: int
    ) -> list[AlarmEvent]:
        """A failed test that changed no level (the alarm says a failure already): in its
        journal, by the person who recorded it."""
        rows = self._db.alarms_where(
            con,
            "sensor = ? AND rule = ? AND side = ? AND state = 'active'",
            (info.id, info.rule, LOCK_TEST),
        )
        if not rows:
            return []
        row = rows[0]
        comment = test.said()
        event_id = self._db.insert_event(
            con, row.id, "commented", test.ts, now, row.level, row.level_name, row.tier,
            row.value, row.isa_state, actor=test.actor, comment=comment,
        )  # fmt: skip
        if event_id is None:
            return []
        return [AlarmEvent.of(row, "commented", test.ts, now, event_id, test.actor, comment)]
