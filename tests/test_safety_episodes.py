"""Active-safety alarms follow their episodes (苏标 alarm ids), over the hub's dispatcher on a
real state database: a start whose end never came times out and a later start raises again; an
end closes only its own episode (the alarm stays at the level of those still open); a blind
area uploaded after live data is an alarm of its own; a restart or reload reads the open
episodes back from the journal; an event older than the hub takes a position is left out."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import orjson
import pytest

from alerts.alarms import AlarmEvent
from alerts.statedb import StateDB
from alerts.vehicles.safety import SAFETY_ACTIONS, SafetyAlarms
from hazardhub.settings import load_registry
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.pipeline import Pipeline
from ingest.store.base import PositionBatch
from ingest.store.sqlite import SqliteStore
from telemetry.activesafety import SafetyEvent
from telemetry.fleetconfig import ActiveSafety
from telemetry.topics import TopicLayout

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
version: 1
tenants:
  - id: coach-co
    vehicles:
      - {id: tanker-03, plate: 苏B·T0003, class: hazmat, terminal: "13912340003"}
"""
T0 = 1_795_900_000_000  # 2026-11-29 05:06:40 CST
MIN = 60_000


@pytest.fixture
async def hub(tmp_path):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(registry, tmp_path / "ts.db")
    await store.open()
    try:
        yield registry, db, store
    finally:
        await store.close()
        db.close()


def _batch(v: int, ts: int, *events: SafetyEvent) -> PositionBatch:
    one = (np.array([v], np.int32), np.array([ts], np.int64))
    rest = (np.array([31.2]), np.array([121.4]), np.array([60.0]), np.array([90.0]))
    return PositionBatch(*one, *rest, safety=tuple((v, e) for e in events))


def _dsm(aid: int, flag: int, type_: int, level: int, ts: int) -> SafetyEvent:
    return SafetyEvent("dsm", aid, flag, type_, level, ts, 1)


def _safe(events: list[AlarmEvent]) -> list[AlarmEvent]:
    """The active-safety alarms' events (not the fleet's: offline ...)."""
    return [e for e in events if e.rule == "active_safety"]


def _alarms(db: StateDB) -> list[tuple[str, int, int | None, str]]:
    rows = [a for a in db.list_alarms(None) if a.rule == "active_safety"]
    return sorted((a.state, a.started_ts, a.ended_ts, a.level_name) for a in rows)


async def test_a_start_without_its_end_times_out_and_a_later_start_raises_again(hub):
    registry, db, store = hub
    v = registry.sensor("tanker-03.speed").index
    d = Dispatcher(registry, store, db, Metrics())
    t1 = T0  # 01:19 in the review: a phone call (id 200) whose end never comes
    got = _safe(await d.judge(None, [_batch(v, t1, _dsm(200, 1, 2, 1, t1))], t1 + 1000))
    assert [e.kind for e in got] == ["raised"]
    t2 = t1 + 150 * MIN  # 2.5 h later a new phone call (id 201), its end a minute on
    got = _safe(await d.judge(None, [_batch(v, t2, _dsm(201, 1, 2, 1, t2))], t2 + 1000))
    assert [(e.kind, e.ts) for e in got] == [("cleared", t1 + 300_000), ("raised", t2)]
    assert "结束未收到 end not received in 300 s" in got[0].comment
    got = _safe(await d.judge(None, [_batch(v, t2 + MIN, _dsm(201, 2, 2, 1, t2 + MIN))], t2 + MIN))
    assert [(e.kind, e.ts) for e in got] == [("cleared", t2 + MIN)]
    assert _alarms(db) == [
        ("cleared", t1, t1 + 300_000, "level1"),
        ("cleared", t2, t2 + MIN, "level1"),
    ]
    assert d.safety.open == {}
    # a position alone, later than the timeout, ends an episode too (the vehicle's clock)
    t3 = t2 + 10 * MIN
    _safe(await d.judge(None, [_batch(v, t3, _dsm(202, 1, 2, 1, t3))], t3))
    got = _safe(await d.judge(None, [_batch(v, t3 + 6 * MIN)], t3 + 6 * MIN))
    assert [(e.kind, e.ts) for e in got] == [("cleared", t3 + 300_000)]


async def test_an_end_closes_its_own_episode_only(hub):
    registry, db, store = hub
    v = registry.sensor("tanker-03.speed").index
    d = Dispatcher(registry, store, db, Metrics())
    up = [_dsm(100, 1, 1, 1, T0), _dsm(101, 1, 1, 2, T0 + 10_000)]  # fatigue 1, then 2
    got = _safe(await d.judge(None, [_batch(v, T0 + 10_000, *up)], T0 + 11_000))
    assert [(e.kind, e.level) for e in got] == [("raised", 1), ("escalated", 2)]
    # the end of id 100: id 101 still going, the alarm stays at level 2 (the journal says it)
    got = _safe(await d.judge(None, [_batch(v, T0 + 20_000, _dsm(100, 2, 1, 1, T0 + 20_000))], T0))
    assert [(e.kind, e.level) for e in got] == [("commented", 2)]
    assert "alarm id 100 (结束 end" in got[0].comment
    assert d.safety.open == {(v, 97): 2}
    got = _safe(await d.judge(None, [_batch(v, T0 + 60_000, _dsm(101, 2, 1, 2, T0 + 60_000))], T0))
    assert [(e.kind, e.ts) for e in got] == [("cleared", T0 + 60_000)]
    # and the other way round: the higher one ends first, the alarm goes back to level 1
    t = T0 + 10 * MIN
    up = [_dsm(102, 1, 1, 1, t), _dsm(103, 1, 1, 2, t + 1000), _dsm(103, 2, 1, 2, t + 2000)]
    got = _safe(await d.judge(None, [_batch(v, t + 2000, *up)], t + 3000))
    assert [(e.kind, e.level) for e in got] == [("raised", 1), ("escalated", 2), ("deescalated", 1)]


async def test_a_blind_area_after_live_data_is_an_alarm_of_its_own(hub):
    registry, db, store = hub
    v = registry.sensor("tanker-03.speed").index
    d = Dispatcher(registry, store, db, Metrics())
    live = _dsm(951, 1, 4, 1, T0 + 200_000)  # distraction, live, still going
    got = _safe(await d.judge(None, [_batch(v, T0 + 200_000, live)], T0 + 201_000))
    assert [e.kind for e in got] == ["raised"]
    backfill = [
        _batch(v, T0, _dsm(950, 1, 4, 1, T0)),
        _batch(v, T0 + 60_000, _dsm(950, 2, 4, 1, T0 + 60_000)),
    ]
    got = _safe(await d.judge(None, backfill, T0 + 205_000))
    assert [(e.kind, e.ts) for e in got] == [("raised", T0), ("cleared", T0 + 60_000)]
    assert got[0].alarm_id != got[1].alarm_id or got[0].alarm_id not in (0,)
    assert _alarms(db) == [
        ("active", T0 + 200_000, None, "level1"),
        ("cleared", T0, T0 + 60_000, "level1"),
    ]
    assert d.safety.open == {(v, 100): 1}
    # the same backfill again (uploaded twice), then after a restart: nothing
    assert _safe(await d.judge(None, backfill, T0 + 206_000)) == []
    again = Dispatcher(registry, store, db, Metrics())
    assert _safe(await again.judge(None, backfill, T0 + 207_000)) == []
    end = _dsm(951, 2, 4, 1, T0 + 260_000)
    got = _safe(await again.judge(None, [_batch(v, T0 + 260_000, end)], T0 + 261_000))
    assert [(e.kind, e.ts) for e in got] == [("cleared", T0 + 260_000)]
    assert len(_alarms(db)) == 2


@pytest.mark.parametrize("how", ["restart", "reload"])
async def test_a_restarted_or_reloaded_hub_knows_the_open_episodes(hub, how):
    """A resent chunk holding only the level-2 start of an alarm begun at level 1 raises
    nothing after a restart or reload; the ends after it close their own episodes."""
    registry, db, store = hub
    v = registry.sensor("tanker-03.speed").index
    first = Dispatcher(registry, store, db, Metrics())
    up = [_dsm(100, 1, 1, 1, T0), _dsm(101, 1, 1, 2, T0 + 10_000), _dsm(102, 1, 1, 1, T0 + 11_000)]
    await first.judge(None, [_batch(v, T0 + 11_000, *up)], T0 + 12_000)
    if how == "restart":
        d = Dispatcher(registry, store, db, Metrics())
    else:
        d = first
        assert _safe(d.reload(registry, T0 + 13_000)) == []
    assert d.safety.open == {(v, 97): 2}
    assert set(d.safety.points[v][97].episodes) == {201, 203, 205}  # ids 100-102 (dsm)
    resent = _batch(v, T0 + 10_000, up[1])
    assert _safe(await d.judge(None, [resent], T0 + 14_000)) == []
    assert d.safety.outcomes == {"repeated": 1}
    ends = [_dsm(101, 2, 1, 2, T0 + 20_000), _dsm(100, 2, 1, 1, T0 + 21_000)]
    got = _safe(await d.judge(None, [_batch(v, T0 + 21_000, *ends)], T0 + 22_000))
    assert [(e.kind, e.level) for e in got] == [("deescalated", 1), ("commented", 1)]
    # restarted again: the ended episodes (ids 100, 101) are the journal's too, their starts
    # sent again are repeats (id 102 still holds the alarm)
    d = Dispatcher(registry, store, db, Metrics())
    assert _safe(await d.judge(None, [_batch(v, T0 + 10_000, *up[:2])], T0 + 25_000)) == []
    assert d.safety.outcomes == {"repeated": 2}
    got = _safe(await d.judge(None, [_batch(v, T0 + 30_000, _dsm(102, 2, 1, 1, T0 + 30_000))], T0))
    assert [(e.kind, e.ts) for e in got] == [("cleared", T0 + 30_000)]
    assert len(_alarms(db)) == 1


def test_an_event_older_than_the_hub_takes_a_position_is_left_out_the_position_kept(tmp_path):
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    registry = load_registry(cfg, [ROOT / "profiles"])
    metrics = Metrics()
    pipeline = Pipeline(registry, TopicLayout(), metrics)
    old = {
        "source": "dsm",
        "alarm_id": 5,
        "flag": 1,
        "type": 2,
        "level": 1,
        "ts": 1_580_000_000_000,
    }
    now = {**old, "alarm_id": 6, "ts": T0}
    bad = {**old, "alarm_id": 7, "ts": T0, "flag": 3}
    rec = {"ts": T0, "lat": 31.2, "lon": 121.4, "speed_kmh": 60, "heading_deg": 90}
    rec["alarm_flags"] = 1
    rec["active_safety"] = [old, now, bad]  # an event of January 2020 in a 2026 report
    topic = "hazardhub/v1/coach-co/vehicles/tanker-03/position"
    handled = pipeline.handle(topic, orjson.dumps(rec), T0 + 1000)
    assert handled.positions is not None and len(handled.positions) == 1
    assert handled.positions.alarm_flags is not None
    assert handled.positions.alarm_flags.tolist() == [1]
    assert [e.alarm_id for _, e in handled.positions.safety] == [6]
    assert any(r.startswith("old_safety: 1 active-safety event") for r in handled.reasons)
    assert any(r.startswith("bad_safety: record 0: active_safety event 2") for r in handled.reasons)
    got = metrics.get("hazardhub_active_safety_rejected_total", reason="too_old")
    assert got == 1
    assert metrics.get("hazardhub_active_safety_rejected_total", reason="bad_event") == 1


def test_the_memory_per_vehicle_is_small():
    """300 vehicles, each with an open alarm of one episode and its last `ENDED` episodes
    ended: measured (docs/vehicles.md says the figure)."""
    n = 300
    alarms = SafetyAlarms(ActiveSafety())
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for aid in range(34):  # 34 episodes each, the last still open
        events = [(v, _dsm(aid, 1, 2, 1, T0 + aid * 1000)) for v in range(n)]
        alarms.judge(events)
        if aid < 33:
            ended = [(v, _dsm(aid, 2, 2, 1, T0 + aid * 1000 + 500)) for v in range(n)]
            alarms.judge(ended)
    del events, ended  # (the batches', not the state's)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    per_vehicle = used / n
    assert len(alarms.open) == n
    print(f"active safety: {per_vehicle:.0f} bytes per vehicle")
    assert per_vehicle < 1500, per_vehicle


def test_the_alarm_says_where_how_fast_how_tired_how_close_and_who():
    alarms = SafetyAlarms(ActiveSafety())
    tired = SafetyEvent("dsm", 7, 1, 1, 2, T0, 3, "HZ00001/261129220500/0", 31.6201, 120.3301)
    tired = SafetyEvent(**{**_fields(tired), "speed_kmh": 62, "fatigue": 5, "driver": "张三"})
    close = SafetyEvent("adas", 8, 0, 1, 1, T0, 0, headway_s=1.5)
    got = alarms.judge([(1, tired), (2, close)])
    assert got[0].said == (
        "苏标报警ID alarm id 7 (开始 start, 级别 level 2); 报警标识号 HZ00001/261129220500/0; "
        "位置 at 31.620100, 120.330100; 车速 speed 62 km/h; 疲劳程度 fatigue degree 5; "
        "驾驶员 driver 张三; 附件 3 个 attachments at the terminal"
    )
    assert "前车距离 headway 1.5 s" in got[1].said
    assert (
        "监控人员" in SAFETY_ACTIONS["dsm_fatigue"]
        and "0x8300" not in SAFETY_ACTIONS["dsm_fatigue"]
    )


def _fields(ev: SafetyEvent) -> dict[str, object]:
    return {k: getattr(ev, k) for k in SafetyEvent.__slots__}
