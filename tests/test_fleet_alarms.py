"""The fleet analytics raise and clear alarms in the hub: overspeed, fatigue, the coaches' night
ban, offline; through the dispatcher, with the state database, and across a restart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from alerts.statedb import StateDB
from hazardhub.settings import load_profiles
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import PositionBatch
from ingest.store.sqlite import SqliteStore
from telemetry.config import HubConfig
from telemetry.registry import Registry, build_registry, parse_document

from e2e_helpers import ROOT

MIN = 60_000
HOUR = 60 * MIN
STEP = 30_000
T0 = 1_772_409_600_000  # 2026-03-02 00:00 UTC, 08:00 China Standard Time
LAT0, LON0 = 30.0, 104.0

CONFIG = """
version: 1
tenants:
  - id: acme
    vehicles:
      - {id: tanker, plate: 川A00001, class: hazmat}
      - {id: coach, plate: 川A00002, class: coach}
"""


def registry() -> Registry:
    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(parse_document(CONFIG, HubConfig, "fleet.yaml"), profiles, packs, "x")


def drive(
    vehicle: int, start: int, legs: list[tuple[int, float]]
) -> list[tuple[int, int, float, float, float]]:
    """A fix every 30 s eastwards; each leg is (duration ms, speed km/h); a stop at the end."""
    rows = []
    t, lon = start, LON0
    per_deg = 6_371_008.8 * math.pi / 180 * math.cos(math.radians(LAT0))
    for duration, speed in legs:
        end = t + duration
        while t < end:
            rows.append((vehicle, t, LAT0, lon, speed))
            lon += speed / 3.6 * STEP / 1000 / per_deg
            t += STEP
    rows.append((vehicle, t, LAT0, lon, 0.0))
    return rows


def positions(rows: list[tuple[int, int, float, float, float]]) -> PositionBatch:
    cols = list(zip(*rows, strict=True))
    return PositionBatch(
        np.asarray(cols[0], np.int32),
        np.asarray(cols[1], np.int64),
        np.asarray(cols[2], float),
        np.asarray(cols[3], float),
        np.asarray(cols[4], float),
        np.zeros(len(rows)),
    )


class Hub:
    def __init__(self, folder: Path) -> None:
        self.reg = registry()
        self.db = StateDB(folder / "state.db")
        self.store = SqliteStore(self.reg, folder / "ts.db")
        self.dispatcher = Dispatcher(self.reg, self.store, self.db, Metrics())

    def vehicle(self, vid: str) -> int:
        return self.reg.sensor(f"{vid}.speed").index

    async def feed(self, rows: list[tuple[int, int, float, float, float]], chunk: int = 40):
        events = []
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            events += await self.dispatcher.judge(None, [positions(part)], part[-1][1])
        return events

    def alarms(self, kind: str) -> list:
        return [a for a in self.db.list_alarms(None) if a.rule == "fleet" and _kind(a) == kind]


def _kind(row) -> str:
    from alerts.table import kind_name

    return kind_name(row.side)


@pytest.fixture
async def hub(tmp_path):
    h = Hub(tmp_path)
    await h.store.open()
    yield h
    await h.store.close()
    h.db.close()


async def test_hazmat_overspeed_raises_and_clears(hub):
    v = hub.vehicle("tanker")
    # 60 km/h off expressways for hazmat: 75 for 5 min, then 50
    events = await hub.feed(drive(v, T0, [(10 * MIN, 50.0), (5 * MIN, 75.0), (10 * MIN, 50.0)]))
    fleet = [(e.kind, e.side) for e in events if e.rule == "fleet"]
    assert fleet == [("raised", "overspeed"), ("cleared", "overspeed")]
    (alarm,) = hub.alarms("overspeed")
    assert (alarm.state, alarm.tier, alarm.sensor, alarm.site) == (
        "cleared",
        "orange",
        "tanker.speed",
        "vehicles",
    )
    assert alarm.started_ts == T0 + 10 * MIN + STEP  # 10 s over the limit: the second fix
    # the episode ends in the middle of the first 40-fix batch (20 min): at the fix back at 50
    assert alarm.ended_ts == T0 + 15 * MIN
    assert alarm.isa_state == "rtn_unack"  # it still wants an acknowledgement
    cleared = next(e for e in events if e.rule == "fleet" and e.kind == "cleared")
    assert (cleared.ts, cleared.value) == (T0 + 15 * MIN, 50.0)
    # the raise names the limit that applied: a manager could not tell 48 from 60 or 80
    raised = next(e for e in events if e.rule == "fleet" and e.kind == "raised")
    assert (raised.value, raised.comment) == (75.0, "限速 limit 60 km/h")


async def test_a_coachs_overspeed_at_night_names_its_night_limit(hub):
    v = hub.vehicle("coach")
    night = T0 + 15 * HOUR  # 23:00 China Standard Time: 80 % of the day's 100
    events = await hub.feed(drive(v, night, [(5 * MIN, 90.0)]))
    [raised] = [e for e in events if e.rule == "fleet" and e.kind == "raised"]
    assert (raised.side, raised.comment) == ("overspeed", "限速 limit 80 km/h")


async def test_a_backfill_array_of_10_minutes_gives_raise_and_clear_at_their_own_fixes(hub):
    """A recorder back from a blind area sends 10 minutes of fixes (one every 10 s) in one
    array: the overspeed in it is raised and cleared at the fixes where it was."""
    v = hub.vehicle("tanker")
    live = drive(v, T0, [(5 * MIN, 50.0)])[:-1]
    assert await hub.feed(live) == []
    back = T0 + 5 * MIN
    speeds = [50.0] * 12 + [72.0] * 30 + [55.0] * 18  # over 60 km/h from 2:00 to 7:00
    lon = live[-1][3]  # on from where the link was lost, about 100 m per fix
    array = [(v, back + i * 10_000, LAT0, lon + i * 0.001, x) for i, x in enumerate(speeds)]
    events = await hub.feed(array, chunk=len(array))
    fleet = [(e.kind, e.side, e.ts, e.value) for e in events if e.rule == "fleet"]
    assert fleet == [
        ("raised", "overspeed", back + 2 * MIN + 10_000, 72.0),  # the run has lasted 10 s
        ("cleared", "overspeed", back + 7 * MIN, 55.0),  # the first fix back under
    ]
    (alarm,) = hub.alarms("overspeed")
    assert (alarm.started_ts, alarm.ended_ts) == (back + 2 * MIN + 10_000, back + 7 * MIN)


async def test_a_backfill_after_a_newer_fix_is_counted_late_not_judged(hub):
    """The blind area sent after the live fix (many terminals do): stored, no alarm, and
    counted, where it left no trace for a vehicle without a per-reading speed rule (helper-74)."""
    v = hub.vehicle("tanker")
    live = drive(v, T0, [(5 * MIN, 50.0)])
    assert await hub.feed(live) == []
    metrics = hub.dispatcher.metrics
    assert metrics.get("hazardhub_positions_late_total") == 0
    lon = live[-1][3]
    late = [(v, T0 + i * 10_000, LAT0, lon + i * 0.001, 90.0) for i in range(1, 7)]
    assert await hub.feed(late, chunk=len(late)) == []
    assert metrics.get("hazardhub_positions_late_total") == 6
    # a repeat of the newest fix is no late position, nor a newer one
    assert await hub.feed([live[-1], (v, live[-1][1] + 10_000, LAT0, lon, 50.0)]) == []
    assert metrics.get("hazardhub_positions_late_total") == 6


async def test_a_report_without_a_fix_raises_its_alarm_bits_and_no_drift(hub):
    """A terminal without a GNSS fix reports lat 0, lon 0 with its alarm bits (an emergency):
    the bits are judged, the place is not (it raised a drift of 1,399,460 km/h and took the
    track to the Gulf of Guinea, helper-78)."""
    v = hub.vehicle("tanker")
    live = drive(v, T0, [(5 * MIN, 50.0)])
    assert await hub.feed(live) == []
    t = live[-1][1] + 30_000
    nowhere = PositionBatch(
        np.array([v], np.int32),
        np.array([t], np.int64),
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.zeros(1),
        np.array([1], np.uint32),  # bit 0: emergency
    )
    events = await hub.dispatcher.judge(None, [nowhere], t)
    assert [(e.kind, e.side) for e in events] == [("raised", "terminal_emergency")]
    await hub.dispatcher.write([], [positions(live), nowhere])
    track = await hub.store.track(v, T0, t + 1)
    assert track.ts.tolist() == [row[1] for row in live]  # no fix, no point of the track
    # the next real fix is judged against the last real one: no drift; its bits clear
    back = [(v, t + 30_000, LAT0, live[-1][3], 0.0)]
    got = [(e.kind, e.side) for e in await hub.feed(back)]
    assert got == [("cleared", "terminal_emergency")]


async def test_coach_fatigue_raised_across_batches_and_cleared_by_a_rest(hub):
    v = hub.vehicle("coach")
    rows = drive(v, T0, [(4 * HOUR + 10 * MIN, 90.0), (25 * MIN, 0.0), (10 * MIN, 90.0)])
    events = await hub.feed(rows, chunk=37)
    fleet = [(e.kind, e.side) for e in events if e.rule == "fleet"]
    assert fleet == [("raised", "fatigue"), ("cleared", "fatigue")]
    (alarm,) = hub.alarms("fatigue")
    assert alarm.started_ts == T0 + 4 * HOUR + STEP
    assert alarm.level_name == "fatigue_continuous"
    # the rest began at the first stopped fix (4 h 10 min) and was complete 20 min later
    assert alarm.ended_ts == T0 + 4 * HOUR + 30 * MIN


async def test_coach_at_three_in_the_morning_is_a_night_ban_moment(hub):
    v = hub.vehicle("coach")
    start = T0 + 18 * HOUR + 50 * MIN  # 02:50 China Standard Time, in the 02:00-05:00 ban
    await hub.feed(drive(v, start, [(20 * MIN, 60.0)]))
    (alarm,) = hub.alarms("night_ban")
    assert (alarm.state, alarm.isa_state, alarm.tier) == ("cleared", "rtn_unack", "red")
    assert alarm.started_ts == start


async def test_offline_by_the_clock_and_back_with_the_next_fix(hub):
    v = hub.vehicle("tanker")
    rows = drive(v, T0, [(10 * MIN, 50.0)])
    rows = rows[:-1]  # it stops answering while moving
    await hub.feed(rows)
    last = rows[-1][1]
    events = await hub.dispatcher.tick(last + 21 * MIN)  # offline after 20 min by default
    assert [(e.kind, e.side) for e in events if e.rule == "fleet"] == [("raised", "offline")]
    back = drive(v, last + 30 * MIN, [(2 * MIN, 40.0)])
    events = await hub.feed(back)
    assert ("cleared", "offline") in [(e.kind, e.side) for e in events if e.rule == "fleet"]
    (alarm,) = hub.alarms("offline")
    assert (alarm.started_ts, alarm.ended_ts) == (last + 20 * MIN, last + 30 * MIN)


async def test_restart_keeps_an_overspeed_episode_once_and_clears_it(tmp_path):
    first = Hub(tmp_path)
    await first.store.open()
    v = first.vehicle("tanker")
    rows = drive(v, T0, [(5 * MIN, 50.0), (10 * MIN, 75.0), (5 * MIN, 50.0)])
    cut = next(i for i, r in enumerate(rows) if r[1] >= T0 + 10 * MIN)
    await first.feed(rows[:cut])
    assert [a.state for a in first.alarms("overspeed")] == ["active"]
    await first.store.close()
    first.db.close()
    # restarted on the same state database: the episode goes on and ends
    second = Hub(tmp_path)
    await second.store.open()
    events = await second.feed(rows[cut:])
    assert [(e.kind, e.side) for e in events if e.rule == "fleet"] == [("cleared", "overspeed")]
    assert [(a.state, a.ended_ts) for a in second.alarms("overspeed")] == [
        ("cleared", T0 + 15 * MIN)  # the first fix back at 50, not the end of its batch
    ]
    await second.store.close()
    second.db.close()


async def test_positions_judged_again_after_a_kill_raise_nothing_twice(tmp_path):
    """helper-150: the hub killed after recording a message's alarms and before acknowledging
    it gets the message again; positions carry no sequence it could drop a repeat by. An
    overspeed raised and cleared in it was recorded a second time (and notified twice). The
    journal has that raise: nothing is recorded again; the vehicle's next episode is."""
    first = Hub(tmp_path)
    await first.store.open()
    v = first.vehicle("tanker")
    rows = drive(v, T0, [(10 * MIN, 50.0), (5 * MIN, 75.0), (10 * MIN, 50.0)])
    events = await first.feed(rows, chunk=len(rows))
    assert [e.kind for e in events if e.rule == "fleet"] == ["raised", "cleared"]
    await first.store.close()
    first.db.close()
    second = Hub(tmp_path)  # no saved analytics state: the message comes again
    await second.store.open()
    assert await second.feed(rows, chunk=len(rows)) == []
    shift = rows[-1][3] - LON0  # on from where it stopped
    later = [
        (x, t, lat, lon + shift, kmh)
        for x, t, lat, lon, kmh in drive(v, rows[-1][1] + MIN, [(5 * MIN, 80.0), (2 * MIN, 50.0)])
    ]
    again = await second.feed(later, chunk=len(later))
    assert [(e.kind, e.side) for e in again if e.rule == "fleet"] == [
        ("raised", "overspeed"),
        ("cleared", "overspeed"),
    ]
    assert len(second.alarms("overspeed")) == 2
    await second.store.close()
    second.db.close()


def test_a_forbidden_area_alarm_restored_after_a_restart_clears_on_leaving():
    from alerts.vehicles import ForbiddenArea, compile_fleet
    from alerts.vehicles.alarms import FleetAlarms
    from telemetry.fleetconfig import FleetSettings

    reg = registry()
    area = ForbiddenArea(
        id="school", polygon=((29.9, 103.9), (29.9, 104.1), (30.1, 104.1), (30.1, 103.9))
    )
    fleet = FleetAlarms(compile_fleet(FleetSettings(geofences=(area,)), reg.vehicles.values()))
    v = reg.sensor("tanker.speed").index
    fleet.restore([(v, "forbidden_area")])
    outside = positions([(v, T0, 31.0, 105.0, 40.0), (v, T0 + STEP, 31.0, 105.01, 40.0)])
    assert [(c.kind, c.level, c.ts) for c in fleet.judge(outside, T0 + STEP)] == [
        ("forbidden_area", 0, T0)
    ]


def test_a_forbidden_area_and_a_route_alarm_name_their_geofence(tmp_path):
    """helper-116: a school's and a water source's no-entry alarms had empty comments: an
    operator could not tell them apart. The raise names the area (its `name` and id), and a
    route left names the route."""
    from alerts.vehicles import CorridorFence, ForbiddenArea, compile_fleet
    from alerts.vehicles.alarms import FleetAlarms
    from telemetry.fleetconfig import FleetSettings

    reg = registry()
    box = ((29.9, 103.9), (29.9, 104.1), (30.1, 104.1), (30.1, 103.9))
    school = ForbiddenArea(id="school", name="实验小学 school", polygon=box)
    water = ForbiddenArea(id="reservoir", polygon=((30.5, 104.5), (30.5, 104.6), (30.6, 104.6)))
    route = CorridorFence(
        id="cl-route", polyline=((31.0, 105.0), (31.0, 105.1)), buffer_m=500, vehicles=("tanker",)
    )
    table = compile_fleet(FleetSettings(geofences=(water, school, route)), reg.vehicles.values())
    fleet = FleetAlarms(table)
    v = reg.sensor("tanker.speed").index
    inside = positions([(v, T0, 30.0, 104.0, 40.0), (v, T0 + STEP, 30.0, 104.01, 40.0)])
    changes = fleet.judge(inside, T0 + STEP)
    raised = {c.kind: c.zone for c in changes if c.level}
    assert raised == {"forbidden_area": "实验小学 school (school)", "corridor": "cl-route"}
    # and the alarm's journal says it
    from alerts.alarms import AlarmBook
    from alerts.table import compile_table

    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, compile_table(reg.sensors))
    said = {e.side: e.comment for e in book.apply_fleet(changes, T0 + STEP)}
    db.close()
    assert said == {
        "forbidden_area": "禁入区域 area 实验小学 school (school)",
        "corridor": "规定路线 route cl-route",
    }


@pytest.mark.parametrize(
    ("window", "action"),
    [
        ("rolling", "24小时内累计驾驶超时 over 8 h in 24 h: change driver"),
        ("calendar", "当日驾驶超时 over 8 h today: change driver"),
    ],
)
def test_a_daily_driving_alarm_says_its_window(tmp_path, window, action):
    """The same alarm kind (`fatigue_daily`) for both windows of the daily rule; its action
    says which the class counts over (`daily_window`), and its limit."""
    from alerts.alarms import AlarmBook
    from alerts.table import compile_table
    from alerts.vehicles import compile_fleet
    from alerts.vehicles.alarms import FleetAlarms
    from telemetry.fleetconfig import FleetSettings

    reg = registry()
    settings = FleetSettings.model_validate({"coach": {"daily_window": window}})
    fleet = FleetAlarms(compile_fleet(settings, reg.vehicles.values()))
    v = reg.sensor("coach.speed").index
    legs = [(3 * HOUR + 40 * MIN, 80.0), (20 * MIN, 0.0)] * 2 + [(HOUR, 80.0)]
    changes = [c for c in fleet.judge(positions(drive(v, T0, legs)), T0) if c.level]
    daily = [c for c in changes if c.kind == "fatigue_daily"]
    assert [c.action for c in daily] == [action]
    db = StateDB(tmp_path / "state.db")
    book = AlarmBook(db, reg, compile_table(reg.sensors))
    said = {e.side: e.action for e in book.apply_fleet(daily, T0 + 9 * HOUR)}
    db.close()
    assert said == {"fatigue_daily": action}


async def test_a_collision_in_a_blind_area_sent_after_the_live_fix_is_raised_once(hub):
    """A collision in a tunnel, its blind area posted after the live fix (no gateway hold in
    between): the live fix says the bit is off now, so the backlog's red bit raised nothing
    and no one called the driver. It is an episode at its own fixes now, raised once, also
    when the alarm book failed to record the batch the first time and it was judged again."""
    from test_dispatch_retry import FailOnce

    from alerts.errors import AlarmStoreError

    v = hub.vehicle("tanker")
    live = drive(v, T0, [(5 * MIN, 50.0)])
    # into the tunnel at 5 min, the live fix out of it at 10 min; the blind area after it
    live.append((v, T0 + 10 * MIN, LAT0, live[-1][3] + 0.05, 50.0))
    assert await hub.feed(live) == []
    collision = 1 << 29
    ts = [T0 + 6 * MIN + k * 10_000 for k in range(3)]
    backlog = PositionBatch(
        np.full(3, v, np.int32),
        np.array(ts, np.int64),
        np.full(3, LAT0),
        np.full(3, LON0 + 0.01),
        np.zeros(3),
        np.zeros(3),
        np.array([collision, collision, 0], np.uint32),
    )
    hub.dispatcher.book.apply_fleet = fail = FailOnce(hub.dispatcher.book.apply_fleet)
    fail.armed = True
    with pytest.raises(AlarmStoreError):
        await hub.dispatcher.judge(None, [backlog], live[-1][1] + 1000)
    events = await hub.dispatcher.judge(None, [backlog], live[-1][1] + 2000)
    got = [(e.kind, e.side, e.ts) for e in events]
    assert got == [
        ("raised", "terminal_collision", ts[0]),
        ("cleared", "terminal_collision", ts[2]),
    ]
    assert await hub.dispatcher.judge(None, [backlog], live[-1][1] + 3000) == []  # sent again
    # a live fix with the bit delivered again (MQTT at least once) is no blind area: nothing
    again = PositionBatch(
        np.full(1, v, np.int32),
        np.array([live[3][1]], np.int64),
        *(np.full(1, x) for x in (LAT0, live[3][3], 50.0, 0.0)),
        np.array([collision], np.uint32),
    )
    assert await hub.dispatcher.judge(None, [again], live[-1][1] + 4000) == []
