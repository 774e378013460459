"""Lock-out tests (甲烷电闭锁 / 风电闭锁 every 15 days, AQ 1029 revision, DOMAIN 1.3): the plan's
interval in the configuration (its own, else its rule's: the coal-methane pack's power-cut rules
say 15 d), the `lock_test_overdue` alarm the hub's clock raises (`alerts.lockalarms`, judged on
the dispatcher's tick with an injected clock), a test recorded through the API (enterprise keys
of the plan's tenant; another's is 404, bad input 422) or by a protective action confirmed in
time, and all of it kept across a restart (the state database)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from test_api_alarms import KEYS, auth

from alerts.alarms import AlarmEvent
from alerts.kinds import LOCK_TEST
from alerts.lockalarms import LockTestAlarms
from alerts.locktests import DAY_MS, insert_test, list_tests
from alerts.statedb import StateDB
from api.app import AppContext, create_app
from api.auth import KeyRing
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig, LockTestSpec, VerifySpec
from telemetry.errors import ConfigError
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import ROOT

T0 = 1_800_000_000_000

CONFIG = """
version: 1
tenants:
  - id: north-coal
    sites:
      - id: face-1301
        kind: mine
        devices:
          - id: kj-sub-3
            profile: coal-substation
            modbus: {{host: 127.0.0.1, port: 1502, unit: 1}}
            sensors:
              - {{id: ch4-t1, point: ch4_t1, kind: methane, rule: coal-methane.face-t1{t1_plan}}}
              - {{id: ch4-t2, point: ch4_t2, kind: methane, tag: T2, rule: coal-methane.return-t2,
                 verify: {{sensor: feed, expect_below: 0.5, within_s: 2,
                          lock_test: {{every_days: 183}}}}}}
              - {{id: ch4-t0, point: ch4_t0, kind: methane, rule: coal-methane.upper-corner-t0}}
              - {{id: feed, point: feed, kind: power_feed}}
  - id: acme-chem
    vehicles:
      - {{id: tanker-01, plate: 苏A·D1234, class: hazmat}}
"""


def registry(t1_lock: str = "", t1_plan: bool = True) -> Registry:
    """`t1_lock`: text added to ch4-t1's verify (", lock_test: {...}"); `t1_plan`: whether
    ch4-t1 has its verify (the power-cut plan)."""
    plan = f",\n                 verify: {{sensor: feed, expect_below: 0.5, within_s: 2{t1_lock}}}"
    config = parse_document(CONFIG.format(t1_plan=plan if t1_plan else ""), HubConfig, "locks.yaml")
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(config, profiles, packs, "locks.yaml")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# configuration -----------------------------------------------------------------------------------
def test_a_plan_takes_its_own_interval_else_its_rules_and_a_sensor_without_a_plan_none() -> None:
    reg = registry()
    t1, t2, t0 = (reg.sensor(s) for s in ("ch4-t1", "ch4-t2", "ch4-t0"))
    assert t1 is not None and t2 is not None and t0 is not None
    assert t1.lock_test == LockTestSpec(every_days=15)  # the coal-methane pack's face-t1
    assert t2.lock_test == LockTestSpec(every_days=183)  # its own (a test stopping the fan)
    assert t0.lock_test is None  # the pack's rule says 15 d, but the sensor has no plan
    packs = {p.name: p for p in load_profiles(ROOT / "profiles")[1]}
    power_cut = [
        name
        for name, rule in packs["coal-methane"].rules.items()
        if any(lv.name == "power_cut" for lv in rule.levels)
    ]
    assert len(power_cut) > 10
    assert all(
        packs["coal-methane"].rules[n].lock_test == LockTestSpec(every_days=15) for n in power_cut
    )
    # the interval is not the core's: a sensor's digest stays as it was without it
    assert "lock_test" not in repr(t2.verify)


@pytest.mark.parametrize("days", [0, -1, 366.5, 10_000])
def test_an_interval_out_of_range_is_refused_saying_what_to_give(days: float) -> None:
    with pytest.raises(ValidationError, match="more than 0 and at most 366"):
        LockTestSpec(every_days=days)
    with pytest.raises(
        ConfigError, match=r"sensors\.0\.verify\.lock_test\.every_days: .*more than 0"
    ):
        registry(f", lock_test: {{every_days: {days}}}")


def test_an_unknown_key_of_the_interval_is_refused() -> None:
    with pytest.raises(ValidationError, match="every_dayz"):
        VerifySpec.model_validate(
            {"sensor": "feed", "expect_below": 0.5, "within_s": 2, "lock_test": {"every_dayz": 1}}
        )


# the alarm on the hub's clock --------------------------------------------------------------------
def kinds(events: Sequence[AlarmEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.kind, e.sensor, e.level_name, e.tier) for e in events]


def test_overdue_raised_once_kept_over_a_restart_and_cleared_by_a_passed_test(
    tmp_path: Path,
) -> None:
    reg = registry()
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, reg)
    assert locks.judge(T0) == []  # first seen: the interval counts from now
    assert locks.judge(T0 + 15 * DAY_MS - 1) == []
    (raised,) = locks.judge(T0 + 15 * DAY_MS + 5000)
    assert kinds([raised]) == [("raised", "ch4-t1", "lock_test_overdue", "yellow")]
    assert raised.ts == T0 + 15 * DAY_MS  # stamped when it fell due
    assert raised.side == "lock_test_overdue"
    assert "no test recorded since the hub first saw the plan" in raised.comment
    assert locks.judge(T0 + 16 * DAY_MS) == []  # one active per plan
    db.close()

    # a restart: the same database, a new hub; nothing raised twice, the plan's first sight kept
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, reg)
    assert locks.judge(T0 + 17 * DAY_MS) == []
    (row,) = [r for r in db.active_alarms() if r.side == LOCK_TEST]
    assert (row.sensor, row.level, row.value) == ("ch4-t1", 1, 15.0)

    at = T0 + 17 * DAY_MS
    test, events, _ = locks.record(
        "ch4-t1", ["north-coal"], at - 3_600_000, True, "试验气 2.0 %", "coal", at
    )
    assert test.actor == "coal" and test.passed and test.source == "api"
    assert kinds(events) == [("cleared", "ch4-t1", "normal", "none")]
    assert events[0].ts == at - 3_600_000  # when the test was made
    assert "lock test passed" in events[0].comment and "(coal): 试验气 2.0 %" in events[0].comment
    # the next interval counts from the test
    assert locks.judge(at - 3_600_000 + 15 * DAY_MS - 1) == []
    assert len(locks.judge(at - 3_600_000 + 15 * DAY_MS)) == 1
    db.close()

    db = StateDB(tmp_path / "state.db")  # the tests are kept
    assert [(t.sensor, t.actor, t.passed) for t in list_tests(db, None, None, 10)] == [
        ("ch4-t1", "coal", True)
    ]
    db.close()


def test_a_failed_test_raises_orange_keeps_it_with_each_failure_journaled_until_a_pass(
    tmp_path: Path,
) -> None:
    reg = registry()
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, reg)
    assert locks.judge(T0) == []
    _, events, _ = locks.record(
        "ch4-t1", None, T0 + 1000, False, "断电器未动作 breaker did not trip", "coal", T0 + 2000
    )
    assert kinds(events) == [("raised", "ch4-t1", "lock_test_failed", "orange")]
    assert events[0].ts == T0 + 1000 and "breaker did not trip" in events[0].comment
    # a second failure keeps it: a line in its journal, by the person who recorded it
    _, events, _ = locks.record(
        "ch4-t1", None, T0 + 5000, False, "again: relay stuck", "coal", T0 + 6000
    )
    assert [(e.kind, e.actor, e.level_name) for e in events] == [
        ("commented", "coal", "lock_test_failed")
    ]
    assert "relay stuck" in events[0].comment
    assert locks.judge(T0 + 20 * DAY_MS) == []  # still failed, not overdue
    _, events, _ = locks.record(
        "ch4-t1", None, T0 + 20 * DAY_MS, True, "repaired, passed", "coal", T0 + 20 * DAY_MS
    )
    assert kinds(events) == [("cleared", "ch4-t1", "normal", "none")]
    # an overdue alarm a failure escalates
    at = T0 + 36 * DAY_MS
    assert kinds(locks.judge(at)) == [("raised", "ch4-t1", "lock_test_overdue", "yellow")]
    _, events, _ = locks.record("ch4-t1", None, at, False, "no cut", "coal", at)
    assert kinds(events) == [("escalated", "ch4-t1", "lock_test_failed", "orange")]
    db.close()


def test_a_plan_without_an_interval_any_more_has_its_alarm_cleared(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, registry())
    locks.judge(T0)
    assert len(locks.judge(T0 + 200 * DAY_MS)) == 2  # both plans overdue
    # ch4-t1's plan (verify) removed: its interval with it
    events = LockTestAlarms(db, registry(t1_plan=False)).judge(T0 + 201 * DAY_MS)
    assert kinds(events) == [("cleared", "ch4-t1", "normal", "none")]
    assert "no lock-test interval any more" in events[0].comment
    db.close()


def test_the_tick_reads_nothing_until_a_test_is_recorded_and_judges_one_recorded_meanwhile(
    tmp_path: Path,
) -> None:
    """The tick judges the plans at its first call, every CHECK_MS, and at once after a test
    recorded through the state database (the hub's confirmations, the API); between them it
    runs no statement (it read the lock tests' newest id at each tick). A test recorded while
    the hub was stopped is judged at the first tick of the next start."""
    reg = registry()
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, reg)
    assert locks.step(T0) == []  # first sight
    due = T0 + 15 * DAY_MS
    assert kinds(locks.step(due)) == [("raised", "ch4-t1", "lock_test_overdue", "yellow")]
    statements: list[str] = []
    for con in (db._db, db._reader, db._quick):
        con.set_trace_callback(statements.append)
    assert locks.step(due + 1000) == []
    assert statements == []  # a tick with no new test costs no query
    # a test recorded by another writer of the state database (as the hub's confirmations
    # are), not judged by it: the next tick judges it, before CHECK_MS have passed
    with db.transaction() as con:
        insert_test(db, con, "north-coal", "ch4-t1", due, True, "试验气", "coal", "api", due)
    assert kinds(locks.step(due + 2000)) == [("cleared", "ch4-t1", "normal", "none")]
    assert locks.step(due + 3000) == []
    db.close()

    # recorded while the hub is stopped (another StateDB of the file, its own count): the next
    # start's first tick judges it
    db = StateDB(tmp_path / "state.db")
    with db.transaction() as con:
        at = due + DAY_MS
        insert_test(db, con, "north-coal", "ch4-t1", at, False, "未断电", "coal", "api", at)
    db.close()
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, reg)
    assert kinds(locks.step(due + DAY_MS + 1000)) == [
        ("raised", "ch4-t1", "lock_test_failed", "orange")
    ]
    db.close()


# through the dispatcher: its tick, and a protective action confirmed in time ---------------------
def batch(i: int, ts: int, value: float, seq: int, quality: int = 0) -> ReadingBatch:
    return ReadingBatch(
        np.array([i], np.int32),
        np.array([ts], np.int64),
        np.array([value]),
        np.full(1, quality, np.uint8),
        np.zeros(1, np.int64),
        np.array([seq], np.int64),
    )


async def test_the_tick_raises_overdue_and_a_power_cut_confirmed_in_time_counts_as_a_test(
    tmp_path: Path,
) -> None:
    reg = registry()
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(reg, tmp_path / "ts.db")
    await store.open()
    try:
        d = Dispatcher(reg, store, db, Metrics())
        assert [e for e in await d.tick(T0) if e.side == "lock_test_overdue"] == []
        due = T0 + 15 * DAY_MS
        got = [e for e in await d.tick(due) if e.side == "lock_test_overdue"]
        assert kinds(got) == [("raised", "ch4-t1", "lock_test_overdue", "yellow")]
        assert [e for e in await d.tick(due + 1000) if e.side == "lock_test_overdue"] == []

        # methane at the power-cut level, the feed cut 0.8 s later: 保护动作已确认 in time
        t1, feed = reg.sensor("ch4-t1"), reg.sensor("feed")
        assert t1 is not None and feed is not None
        at = due + 10_000
        await d.judge(batch(feed.index, at - 1000, 1.0, 0), [], at)
        await d.judge(batch(t1.index, at, 1.6, 1), [], at + 100)
        await d.judge(batch(feed.index, at + 800, 0.0, 2), [], at + 900)
        (test,) = list_tests(db, ["north-coal"], "ch4-t1", 10)
        assert (test.source, test.actor, test.passed, test.ts) == ("action", None, True, at + 800)
        assert "保护动作已确认" in test.note
        # the next tick (a test recorded: judged at once) clears the overdue alarm
        got = [e for e in await d.tick(at + 2000) if e.side == "lock_test_overdue"]
        assert kinds(got) == [("cleared", "ch4-t1", "normal", "none")]
        assert got[0].ts == at + 800

        # a cut confirmed late (the feed 3 s after the level) is no passed test: a failed one
        # (its action_failed raise's and the late confirmation's, at the deadline: one test)
        await d.judge(batch(t1.index, at + 60_000, 0.5, 3), [], at + 60_100)
        await d.judge(batch(feed.index, at + 61_000, 1.0, 4), [], at + 61_100)
        await d.judge(batch(t1.index, at + 70_000, 1.6, 5), [], at + 70_100)
        await d.judge(batch(feed.index, at + 73_000, 0.0, 6), [], at + 73_100)
        failed, passed = list_tests(db, None, "ch4-t1", 10)
        assert passed.passed and (failed.passed, failed.source, failed.actor) == (
            False,
            "action",
            None,
        )
        assert failed.ts == at + 72_000  # the deadline, 2 s after the level
        assert "action_failed" in failed.note
        got = [e for e in await d.tick(at + 74_000) if e.side == "lock_test_overdue"]
        assert kinds(got) == [("raised", "ch4-t1", "lock_test_failed", "orange")]
        assert got[0].ts == at + 72_000
    finally:
        await store.close()
        db.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Any]:
    """A dispatcher over `registry(t1_lock)`: rig(t1_lock) gives (dispatcher, db, registry)."""
    opened: list[tuple[SqliteStore, StateDB]] = []

    async def make(t1_lock: str = "") -> tuple[Dispatcher, StateDB, Registry]:
        reg = registry(t1_lock)
        db = StateDB(tmp_path / "state.db")
        store = SqliteStore(reg, tmp_path / "ts.db")
        await store.open()
        opened.append((store, db))
        return Dispatcher(reg, store, db, Metrics()), db, reg

    try:
        yield make
    finally:
        for store, db in opened:
            await store.close()
            db.close()


def index(reg: Registry, sensor: str) -> int:
    info = reg.sensor(sensor)
    assert info is not None
    return info.index


async def lock_events(d: Dispatcher, now: int) -> list[tuple[str, str, str, str]]:
    return kinds([e for e in await d.tick(now) if e.side == "lock_test_overdue"])


async def test_a_power_cut_that_never_came_is_a_failed_test_and_the_alarm_goes_orange(
    rig: Any,
) -> None:
    d, db, reg = await rig()
    t1, feed = index(reg, "ch4-t1"), index(reg, "feed")
    assert await lock_events(d, T0) == []
    # methane at the power-cut level; the feed still reads power 5 s later: 馈电异常
    await d.judge(batch(feed, T0 + 1000, 1.0, 0), [], T0 + 1000)
    await d.judge(batch(t1, T0 + 2000, 1.6, 1), [], T0 + 2100)
    await d.judge(batch(feed, T0 + 7000, 1.0, 2), [], T0 + 7100)
    (test,) = list_tests(db, None, "ch4-t1", 10)
    assert (test.passed, test.source, test.actor, test.ts) == (False, "action", None, T0 + 4000)
    assert test.note.startswith("保护动作失败 protective action failed (action_failed)")
    assert await lock_events(d, T0 + 8000) == [("raised", "ch4-t1", "lock_test_failed", "orange")]
    # the same failure judged again (a batch retried) records nothing more
    await d.judge(batch(feed, T0 + 9000, 1.0, 3), [], T0 + 9100)
    assert len(list_tests(db, None, "ch4-t1", 10)) == 1


async def test_a_held_cut_broken_while_the_methane_lasts_is_a_failed_test_after_the_passed_one(
    rig: Any,
) -> None:
    d, db, reg = await rig(", hold: true")
    t1, feed = index(reg, "ch4-t1"), index(reg, "feed")
    assert await lock_events(d, T0) == []
    assert await lock_events(d, T0 + 16 * DAY_MS) == [
        ("raised", "ch4-t1", "lock_test_overdue", "yellow")
    ]
    at = T0 + 16 * DAY_MS + 60_000
    await d.judge(batch(feed, at - 1000, 1.0, 0), [], at - 1000)
    await d.judge(batch(t1, at, 1.6, 1), [], at + 100)
    await d.judge(batch(feed, at + 800, 0.0, 2), [], at + 900)  # cut in time
    assert await lock_events(d, at + 1000) == [("cleared", "ch4-t1", "normal", "none")]
    # power back on while the methane is still over the limit: the 闭锁 did not hold
    await d.judge(batch(feed, at + 120_000, 1.0, 3), [], at + 120_100)
    await d.judge(batch(t1, at + 121_000, 1.7, 4), [], at + 121_100)
    failed, passed = list_tests(db, None, "ch4-t1", 10)
    assert passed.passed and passed.ts == at + 800
    assert (failed.passed, failed.source, failed.ts) == (False, "action", at + 120_000)
    assert "did not hold" in failed.note
    got = await d.tick(at + 122_000)
    assert kinds([e for e in got if e.side == "lock_test_overdue"]) == [
        ("raised", "ch4-t1", "lock_test_failed", "orange")
    ]


async def test_a_fault_lockout_confirmed_in_time_is_no_passed_test(rig: Any) -> None:
    d, db, reg = await rig(", on_fault: true")
    t1, feed = index(reg, "ch4-t1"), index(reg, "feed")
    assert await lock_events(d, T0) == []
    # the head in fault (故障闭锁): the feed cut in time; no gas threshold was tested
    await d.judge(batch(feed, T0 + 1000, 1.0, 0), [], T0 + 1000)
    await d.judge(batch(t1, T0 + 2000, math.nan, 1, quality=1), [], T0 + 2100)
    await d.judge(batch(feed, T0 + 2500, 0.0, 2), [], T0 + 2600)
    assert list_tests(db, None, "ch4-t1", 10) == []
    # the same plan's cut at the level in time is one
    await d.judge(batch(t1, T0 + 60_000, 0.3, 3), [], T0 + 60_100)
    await d.judge(batch(feed, T0 + 61_000, 1.0, 4), [], T0 + 61_100)
    await d.judge(batch(t1, T0 + 70_000, 1.6, 5), [], T0 + 70_100)
    await d.judge(batch(feed, T0 + 70_500, 0.0, 6), [], T0 + 70_600)
    (test,) = list_tests(db, None, "ch4-t1", 10)
    assert test.passed and test.ts == T0 + 70_500


# over HTTP ---------------------------------------------------------------------------------------
class Api:
    def __init__(self, tmp_path: Path) -> None:
        self.reg = registry()
        self.db = StateDB(tmp_path / "state.db")
        self.store = SqliteStore(self.reg, tmp_path / "ts.db")
        self.published: list[AlarmEvent] = []

        async def on_events(events: Sequence[AlarmEvent]) -> None:
            self.published.extend(events)

        ctx = AppContext(
            self.reg, self.store, self.db, Metrics(), KeyRing(KEYS), on_events=on_events
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://hub"
        )

    async def post(self, body: Any, who: str = "coal") -> httpx.Response:
        return await self.client.post("/api/v1/lock-tests", json=body, headers=auth(who))

    async def get(self, who: str = "coal", **params: Any) -> httpx.Response:
        return await self.client.get("/api/v1/lock-tests", params=params, headers=auth(who))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    a = Api(tmp_path)
    await a.store.open()
    try:
        yield a
    finally:
        await a.client.aclose()
        await a.store.close()
        a.db.close()


async def test_an_enterprise_records_a_test_of_its_plan_and_it_clears_the_overdue_alarm(
    api: Api,
) -> None:
    locks = LockTestAlarms(api.db, api.reg)
    locks.judge(now_ms() - 20 * DAY_MS)
    raised = locks.judge(now_ms())
    assert {e.sensor for e in raised} == {"ch4-t1"}
    ts = now_ms() - 600_000
    r = await api.post(
        {"sensor": "ch4-t1", "ts": ts, "passed": True, "note": "试验气 2 %: 断电 0.6 s"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["alarm_events"] == 1
    test = body["test"]
    assert (test["sensor"], test["tenant"], test["ts"], test["actor"], test["source"]) == (
        "ch4-t1",
        "north-coal",
        ts,
        "coal",
        "api",
    )
    assert [(e.kind, e.sensor, e.side) for e in api.published] == [
        ("cleared", "ch4-t1", "lock_test_overdue")
    ]
    # the alarm's journal says who and what; the alarm waits for its acknowledgement
    r = await api.client.get(f"/api/v1/alarms/{raised[0].alarm_id}", headers=auth("coal"))
    alarm = r.json()
    assert (alarm["state"], alarm["acked"], alarm["side"]) == (
        "cleared",
        False,
        "lock_test_overdue",
    )
    assert "(coal): 试验气 2 %: 断电 0.6 s" in alarm["events"][-1]["comment"]
    # a failed one, with its note: the alarm raised again (orange)
    r = await api.post(
        {"sensor": "ch4-t1", "ts": now_ms(), "passed": False, "note": "未断电 no cut"}
    )
    assert r.status_code == 201 and r.json()["alarm_events"] == 1
    assert (api.published[-1].kind, api.published[-1].tier) == ("raised", "orange")
    # the list: newest recorded first; the centre sees it, another enterprise does not
    r = await api.get()
    assert [t["passed"] for t in r.json()] == [False, True]
    assert len((await api.get("op", sensor="ch4-t1")).json()) == 2
    assert (await api.get("chem")).json() == []
    assert (await api.get("chem", sensor="ch4-t1")).status_code == 404
    assert (await api.get("chem", tenant="north-coal")).status_code == 404
    assert (await api.get("coal", sensor="no-such")).status_code == 404
    # the sensor says its plan's interval (the rule's here)
    r = await api.client.get("/api/v1/sensors/ch4-t1", headers=auth("coal"))
    assert r.json()["lock_test"] == {"every_days": 15.0}


async def test_another_enterprise_a_centre_key_a_viewer_and_bad_input_are_refused(api: Api) -> None:
    good = {"sensor": "ch4-t1", "ts": now_ms(), "passed": True, "note": ""}
    assert (await api.post(good, "chem")).status_code == 404  # another enterprise's plan
    for who in ("op", "admin"):
        r = await api.post(good, who)
        assert r.status_code == 403 and "enterprise" in r.json()["detail"]
    assert (await api.post(good, "viewer")).status_code == 403
    bad: list[tuple[dict[str, Any], str]] = [
        ({**good, "passed": False}, "a failed test needs a note"),
        ({**good, "passed": False, "note": " \u200b "}, "a failed test needs a note"),
        ({**good, "ts": now_ms() + 120_000}, "later than the hub's clock"),
        ({**good, "ts": now_ms() // 1000}, "looks like seconds"),
        ({**good, "ts": 0}, "greater than or equal to 1"),
        ({**good, "sensor": "ch4-t0"}, "no protective-action plan"),
        ({**good, "result": "ok"}, "result"),
        ({k: v for k, v in good.items() if k != "passed"}, "passed"),
    ]
    for body, says in bad:
        r = await api.post(body)
        assert r.status_code == 422, (body, r.text)
        assert says in r.text, (body, r.text)
    assert (await api.post({**good, "sensor": "no-such"})).status_code == 404
    assert list_tests(api.db, None, None, 10) == []  # nothing recorded by the refused calls
    assert (await api.get(limit=0)).status_code == 422


# the plan's interval and first sight -------------------------------------------------------------
def test_an_interval_changed_clears_or_raises_at_the_change_saying_so(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    LockTestAlarms(db, registry()).judge(T0)
    (raised,) = LockTestAlarms(db, registry()).judge(T0 + 16 * DAY_MS)
    assert raised.sensor == "ch4-t1" and "every 15 d" in raised.action
    # the plan's interval now 183 d: not overdue under it, cleared at the change
    at = T0 + 20 * DAY_MS
    events = LockTestAlarms(db, registry(", lock_test: {every_days: 183}")).judge(at)
    assert kinds(events) == [("cleared", "ch4-t1", "normal", "none")]
    assert events[0].ts == at
    assert "interval changed: every 15 d -> 183 d" in events[0].comment
    assert "lock test passed" not in events[0].comment
    # then 10 d: overdue under it, raised at the change, its action saying the plan's interval
    at += DAY_MS
    events = LockTestAlarms(db, registry(", lock_test: {every_days: 10}")).judge(at)
    assert kinds(events) == [("raised", "ch4-t1", "lock_test_overdue", "yellow")]
    assert events[0].ts == at
    assert "interval changed: every 183 d -> 10 d" in events[0].comment
    assert "every 10 d" in events[0].action and "every 15 d" not in events[0].action
    db.close()


def test_the_overdue_action_says_the_plans_own_interval(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, registry())
    locks.judge(T0)
    events = {e.sensor: e for e in locks.judge(T0 + 200 * DAY_MS)}
    assert "every 183 d" in events["ch4-t2"].action
    assert "every 15 d" in events["ch4-t1"].action and "183" not in events["ch4-t1"].action
    db.close()


def test_a_plan_removed_and_added_back_counts_its_interval_from_then(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    locks = LockTestAlarms(db, registry())
    locks.judge(T0)
    locks.record("ch4-t1", None, T0 + 1000, True, "", "coal", T0 + 1000)
    _, events, _ = locks.record("ch4-t1", None, T0 + 2000, False, "no cut", "coal", T0 + 2000)
    assert kinds(events) == [("raised", "ch4-t1", "lock_test_failed", "orange")]
    # ch4-t1's plan taken away (its failed alarm cleared, its tests kept), added back 100 days
    # later: neither failed nor overdue at once
    events = LockTestAlarms(db, registry(t1_plan=False)).judge(T0 + DAY_MS)
    assert kinds(events) == [("cleared", "ch4-t1", "normal", "none")]
    assert "闭锁测试周期已取消" in events[0].comment
    assert len(list_tests(db, None, "ch4-t1", 10)) == 2
    back = T0 + 100 * DAY_MS
    locks = LockTestAlarms(db, registry())
    assert [e.sensor for e in locks.judge(back)] == []  # ch4-t2's is 183 d
    assert locks.judge(back + 15 * DAY_MS - 1) == []
    assert [e.sensor for e in locks.judge(back + 15 * DAY_MS)] == ["ch4-t1"]
    db.close()


def test_a_first_sight_in_the_future_or_before_2020_does_not_freeze_in(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    with db.transaction() as con:  # a hub whose clock was wrong at its first start
        con.execute(
            "INSERT INTO lock_plans (tenant, sensor, first_seen) VALUES "
            "('north-coal', 'ch4-t1', 1000), ('north-coal', 'ch4-t2', ?)",
            (T0 + 300 * DAY_MS,),
        )
    locks = LockTestAlarms(db, registry())
    assert locks.judge(1000 + 20 * DAY_MS) == []  # a clock before 2020 judges nothing
    assert locks.judge(T0) == []  # both taken again as now
    assert locks.judge(T0 + 15 * DAY_MS - 1) == []
    assert [e.sensor for e in locks.judge(T0 + 15 * DAY_MS)] == ["ch4-t1"]
    assert [e.sensor for e in locks.judge(T0 + 183 * DAY_MS)] == ["ch4-t2"]
    db.close()


# the API: bounds, strict types, the same test again, paging --------------------------------------
async def test_a_test_older_than_366_days_is_refused_and_no_raise_predates_the_first_sight(
    api: Api,
) -> None:
    good = {"sensor": "ch4-t1", "passed": True, "note": ""}
    r = await api.post({**good, "ts": 1_000_000_000_000})  # 2001
    assert r.status_code == 422 and "more than 366 days before" in r.text
    assert list_tests(api.db, None, None, 10) == []
    assert (await api.post({**good, "ts": now_ms() - 367 * DAY_MS})).status_code == 422
    # 300 days ago (within the bound) on a plan new to the hub: recorded, but older than its
    # first sight less its interval: the plan counts from its first sight (nothing raised)
    before = now_ms()
    r = await api.post({**good, "ts": before - 300 * DAY_MS})
    assert r.status_code == 201, r.text
    assert api.published == []
    # a failure found 10 days before the hub first saw the plan: orange, stamped from then
    r = await api.post({**good, "ts": before - 10 * DAY_MS, "passed": False, "note": "no cut"})
    assert r.status_code == 201, r.text
    (raised,) = api.published
    assert (raised.kind, raised.level_name) == ("raised", "lock_test_failed")
    assert before <= raised.ts <= now_ms()


async def test_strict_types_are_required_of_a_test(api: Api) -> None:
    good = {"sensor": "ch4-t1", "ts": now_ms(), "passed": True, "note": ""}
    for body in (
        {**good, "passed": "yes"},
        {**good, "passed": 1},
        {**good, "passed": "true"},
        {**good, "ts": str(good["ts"])},
        {**good, "ts": float(good["ts"])},
    ):
        r = await api.post(body)
        assert r.status_code == 422, (body, r.text)
    assert list_tests(api.db, None, None, 10) == []


async def test_the_same_test_posted_again_is_one_record_and_the_list_pages(api: Api) -> None:
    ts = now_ms() - 60_000
    body = {"sensor": "ch4-t1", "ts": ts, "passed": False, "note": "未断电 no cut"}
    first = await api.post(body)
    assert first.status_code == 201
    for _ in range(2):
        again = await api.post({**body, "note": "sent again"})
        assert again.status_code == 200, again.text
        assert again.json() == {"test": first.json()["test"], "alarm_events": 0}
    assert len(list_tests(api.db, None, None, 10)) == 1
    # another key, or another result, is another test
    assert (await api.post({**body, "passed": True})).status_code == 201
    for k in range(5):
        r = await api.post({**body, "ts": ts + 1 + k, "note": f"test {k}"})
        assert r.status_code == 201
    everything = [t["id"] for t in (await api.get(limit=100)).json()]
    assert len(everything) == 7 and everything == sorted(everything, reverse=True)
    pages: list[int] = []
    before: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} if before is None else {"limit": 3, "before": before}
        page = [t["id"] for t in (await api.get(**params)).json()]
        if not page:
            break
        pages += page
        before = page[-1]
    assert pages == everything
    assert (await api.get(before=0)).status_code == 422


def test_a_state_database_of_before_the_interval_column_gets_it_at_open(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE lock_plans (tenant TEXT NOT NULL, sensor TEXT NOT NULL, "
        "first_seen INTEGER NOT NULL, PRIMARY KEY (tenant, sensor))"
    )
    con.execute("INSERT INTO lock_plans VALUES ('north-coal', 'ch4-t1', ?)", (T0,))
    con.commit()
    con.close()
    db = StateDB(path)
    locks = LockTestAlarms(db, registry())
    assert locks.judge(T0 + DAY_MS) == []  # its first sight kept
    assert [e.sensor for e in locks.judge(T0 + 15 * DAY_MS)] == ["ch4-t1"]
    db.close()
