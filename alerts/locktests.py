"""The lock-out tests of protective-action plans (甲烷电闭锁 / 风电闭锁, AQ 1029 revision,
DOMAIN 1.3: tested every 15 days, every 6 months where the test may stop the local fan): the
record of each test, and the verdict on a plan's tests, pure, that `alerts.lockalarms` turns
into its alarm.

A plan is a sensor's `verify:`; its interval (`lock_test: {every_days: N}`, the plan's own or its
sensor's rule's) is on the sensor (`SensorInfo.lock_test`). A test is recorded through the API by
a person of the plan's enterprise (passed or failed, with a note), or by the hub when the plan's
protective action is confirmed in time (`保护动作已确认` within `within_s`: the lock-out worked).
The table `lock_tests` is never updated nor deleted from: it is the audit record of the tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from alerts.alarmchange import cst
from alerts.statedb import StateDB

__all__ = [
    "DAY_MS",
    "FAILED",
    "MAX_AGE_MS",
    "OVERDUE",
    "SANE_MS",
    "SOURCE_ACTION",
    "SOURCE_API",
    "LockTest",
    "LockVerdict",
    "find_test",
    "first_seen",
    "forget_plans",
    "insert_test",
    "list_tests",
    "plan_tests",
    "set_interval",
    "verdict",
]

SOURCE_API = "api"  # recorded through the API by a person
SOURCE_ACTION = "action"  # the plan's protective action confirmed in time (the hub's)
OVERDUE = 1  # the alarm's levels: no passed test for the interval
FAILED = 2  # the newest test failed

DAY_MS = 86_400_000
# a test recorded through the API is at most this old (the longest interval, 366 d: an older test
# makes no plan current, and a ts years back is a typing error, not a test)
MAX_AGE_MS = 366 * DAY_MS
# a clock before this (2020-01-01 UTC) is wrong: a plan's first sight is not taken from it
SANE_MS = 1_577_836_800_000
_COLS = "id, tenant, sensor, ts, passed, note, actor, source, recorded_at"
_SECONDS = "%Y-%m-%d %H:%M:%S CST"


@dataclass(frozen=True, slots=True)
class LockTest:
    """One test of a plan's lock-out: `ts` when it was made (event time), `recorded_at` when the
    hub recorded it; `actor` the API key's name (None: the hub's, a confirmed action)."""

    id: int
    tenant: str
    sensor: str  # the plan's sensor (the one whose level demands the action)
    ts: int
    passed: bool
    note: str
    actor: str | None
    source: str
    recorded_at: int

    def who(self) -> str:
        return self.actor if self.actor is not None else "hub 保护动作已确认 action confirmed"

    def said(self) -> str:
        """The test as the alarm's journal says it."""
        what = "闭锁测试通过 lock test passed" if self.passed else "闭锁测试未通过 lock test failed"
        note = f": {self.note}" if self.note else ""
        return f"{what} at {cst(self.ts, _SECONDS)} ({self.who()}){note}"


def _test(row: Sequence[object]) -> LockTest:
    i, tenant, sensor, ts, passed, note, actor, source, recorded_at = row
    return LockTest(
        int(str(i)),
        str(tenant),
        str(sensor),
        int(str(ts)),
        bool(passed),
        str(note),
        None if actor is None else str(actor),
        str(source),
        int(str(recorded_at)),
    )


def insert_test(
    db: StateDB,
    con: sqlite3.Connection,
    tenant: str,
    sensor: str,
    ts: int,
    passed: bool,
    note: str,
    actor: str | None,
    source: str,
    recorded_at: int,
) -> LockTest | None:
    """Record a test (in the caller's transaction, of `db`); None when the hub's own test of
    that plan and time is recorded already (a confirmation recorded again). Counted in
    `db.lock_tests_recorded` (a transaction rolled back after it too: one judgement more)."""
    cur = con.execute(
        "INSERT OR IGNORE INTO lock_tests (tenant, sensor, ts, passed, note, actor, source, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (tenant, sensor, ts, int(passed), note, actor, source, recorded_at),
    )
    if not cur.rowcount:
        return None
    db.lock_tests_recorded += 1
    row_id = int(cur.lastrowid or 0)
    return LockTest(row_id, tenant, sensor, ts, passed, note, actor, source, recorded_at)


def plan_tests(
    con: sqlite3.Connection, tenant: str, sensor: str, since: int
) -> tuple[LockTest | None, LockTest | None]:
    """A plan's newest test (by event time, then as recorded) and its newest passed test, of
    those made at or after `since` (the hub's first sight of the plan less its interval: the
    tests of a plan removed and added back, or of a sensor id reused, are of another plan)."""
    where = "tenant = ? AND sensor = ? AND ts >= ?"
    order = "ORDER BY ts DESC, id DESC LIMIT 1"
    args = (tenant, sensor, since)
    newest = con.execute(f"SELECT {_COLS} FROM lock_tests WHERE {where} {order}", args).fetchone()
    passed = con.execute(
        f"SELECT {_COLS} FROM lock_tests WHERE {where} AND passed = 1 {order}", args
    ).fetchone()
    return (
        None if newest is None else _test(newest),
        None if passed is None else _test(passed),
    )


def find_test(
    con: sqlite3.Connection, tenant: str, sensor: str, ts: int, passed: bool, actor: str
) -> LockTest | None:
    """The test a person recorded already with the same plan, time, result and key (the same
    test posted again), the first of them; None when there is none."""
    row = con.execute(
        f"SELECT {_COLS} FROM lock_tests WHERE tenant = ? AND sensor = ? AND ts = ? "
        "AND passed = ? AND actor = ? ORDER BY id LIMIT 1",
        (tenant, sensor, ts, int(passed), actor),
    ).fetchone()
    return None if row is None else _test(row)


def first_seen(
    con: sqlite3.Connection, tenant: str, sensor: str, now: int
) -> tuple[int, float | None]:
    """When the hub first saw the plan with an interval (`now` the first time it is asked) and
    the interval it was last judged with (None: never). A first sight later than `now` or
    before 2020 (`SANE_MS`: the hub's clock was wrong then) is taken again as `now`."""
    con.execute(
        "INSERT OR IGNORE INTO lock_plans (tenant, sensor, first_seen) VALUES (?, ?, ?)",
        (tenant, sensor, now),
    )
    row = con.execute(
        "SELECT first_seen, every_days FROM lock_plans WHERE tenant = ? AND sensor = ?",
        (tenant, sensor),
    ).fetchone()
    seen = int(row[0])
    if (seen > now or seen < SANE_MS) and now >= SANE_MS:
        con.execute(
            "UPDATE lock_plans SET first_seen = ? WHERE tenant = ? AND sensor = ?",
            (now, tenant, sensor),
        )
        seen = now
    return seen, None if row[1] is None else float(row[1])


def set_interval(con: sqlite3.Connection, tenant: str, sensor: str, every_days: float) -> None:
    """Remember the interval the plan was judged with."""
    con.execute(
        "UPDATE lock_plans SET every_days = ? WHERE tenant = ? AND sensor = ?",
        (every_days, tenant, sensor),
    )


def forget_plans(con: sqlite3.Connection, kept: set[tuple[str, str]]) -> None:
    """Forget when the hub first saw the plans not in `kept` (tenant, sensor): a plan removed
    (or its interval) and added back later counts its interval from then. Their tests stay."""
    rows = con.execute("SELECT tenant, sensor FROM lock_plans").fetchall()
    gone = [(str(t), str(s)) for t, s in rows if (str(t), str(s)) not in kept]
    con.executemany("DELETE FROM lock_plans WHERE tenant = ? AND sensor = ?", gone)


def list_tests(
    db: StateDB,
    tenants: Sequence[str] | None,
    sensor: str | None,
    limit: int,
    before: int | None = None,
) -> list[LockTest]:
    """The tests of `tenants` (None: every tenant), of one plan's sensor when given, newest
    recorded first; with `before`, those recorded before the test of that id (the next page)."""
    clauses: list[str] = []
    params: list[object] = []
    if before is not None:
        clauses.append("id < ?")
        params.append(before)
    if tenants is not None:
        clauses.append(f"tenant IN ({','.join('?' * len(tenants))})")
        params += list(tenants)
    if sensor is not None:
        clauses.append("sensor = ?")
        params.append(sensor)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    if tenants is not None and not tenants:
        return []
    rows = db.query(
        f"SELECT {_COLS} FROM lock_tests {where} ORDER BY id DESC LIMIT ?", [*params, limit]
    )
    return [_test(r) for r in rows]


@dataclass(frozen=True, slots=True)
class LockVerdict:
    """What a plan's tests say at `now`: its alarm's level (0, OVERDUE, FAILED), the event time
    of the change, the days since the last passed test (or since the hub first saw the plan),
    and the journal's words."""

    level: int
    ts: int
    days: float
    said: str


def verdict(
    every_days: float,
    seen: int,
    last: LockTest | None,
    passed: LockTest | None,
    now: int,
) -> LockVerdict:
    """The verdict on a plan: FAILED while its newest test failed (until a passed one); else
    OVERDUE once `every_days` have passed since its newest passed test (or, with none, since
    the hub first saw the plan, `seen`), stamped with the moment it fell due; else 0, stamped
    with the newest test. A raise is never stamped before the hub first saw the plan."""
    base = passed.ts if passed is not None else seen
    days = round(max(0, now - base) / DAY_MS, 2)
    if last is not None and not last.passed:
        return LockVerdict(FAILED, max(last.ts, seen), days, last.said())
    due = base + round(every_days * DAY_MS)
    if now >= due:
        if passed is not None:
            since = f"上次通过 last passed {cst(passed.ts, _SECONDS)} ({passed.who()})"
        else:
            since = (
                f"无测试记录 no test recorded since the hub first saw the plan "
                f"{cst(seen, _SECONDS)}"
            )
        said = f"闭锁测试超期 lock test overdue: every {every_days:g} d; {since}"
        return LockVerdict(OVERDUE, max(due, seen), days, said)
    if last is None:
        return LockVerdict(0, now, days, "")
    return LockVerdict(0, last.ts, days, last.said())
