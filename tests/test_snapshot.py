"""The analytics state across a restart (alerts.snapshot): a coach's driving time, an overspeed
episode in progress and a sensor's running delay go on after the hub restarts; the state
database still decides which alarms are active; an unreadable file is ignored."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from test_fleet_alarms import HOUR, MIN, T0, drive, positions, registry

from alerts import snapshot
from alerts.statedb import StateDB
from alerts.vehicles.state import NO_KEY
from hazardhub.hub import Hub, HubSettings
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore

from e2e_helpers import mine_registry, running_hub
from services import free_port


class Node:
    """A dispatcher on its state database and store, as a hub process holds them."""

    def __init__(self, folder: Path, state: bool = True, reg=None) -> None:
        self.reg = reg or registry()
        self.folder = folder
        self.db = StateDB(folder / "state.db")
        self.store = SqliteStore(self.reg, folder / "ts.db")
        self.dispatcher = Dispatcher(
            self.reg,
            self.store,
            self.db,
            Metrics(),
            state_file=folder / "analytics-state.npz" if state else None,
        )

    async def __aenter__(self) -> Node:
        await self.store.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()
        self.db.close()

    async def feed(self, rows, chunk: int = 40) -> list:
        events = []
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            events += await self.dispatcher.judge(None, [positions(part)], part[-1][1])
        return events

    def fleet(self, kind: str) -> list:
        from alerts.table import kind_name

        return [
            a for a in self.db.list_alarms(None) if a.rule == "fleet" and kind_name(a.side) == kind
        ]


def coach_rows(reg):
    v = reg.sensor("coach.speed").index
    return drive(v, T0, [(4 * HOUR + 20 * MIN, 90.0)])


async def test_a_coach_keeps_its_driving_time_over_a_stop_of_the_hub(tmp_path):
    rows = coach_rows(registry())
    cut = next(i for i, r in enumerate(rows) if r[1] >= T0 + 3 * HOUR + 50 * MIN)
    async with Node(tmp_path) as first:
        await first.feed(rows[:cut])
        assert first.fleet("fatigue") == []
        await first.dispatcher.save_state()  # what the hub does when it stops
    async with Node(tmp_path) as second:
        await second.feed(rows[cut:])
        (alarm,) = second.fleet("fatigue")
        assert alarm.state == "active"
        assert abs(alarm.started_ts - (T0 + 4 * HOUR)) <= 60_000
    # without the saved state the restart forgets 3 h 50 min of driving
    other = tmp_path / "forgetful"
    other.mkdir()
    async with Node(other, state=False) as first:
        await first.feed(rows[:cut])
    async with Node(other, state=False) as second:
        await second.feed(rows[cut:])
        assert second.fleet("fatigue") == []


async def test_an_overspeed_begun_before_a_crash_is_raised_on_time(tmp_path):
    v = registry().sensor("tanker.speed").index
    # 75 km/h off expressways (hazmat 60) from 10:00; raised after 10 s of it
    rows = drive(v, T0, [(10 * MIN, 50.0), (5 * MIN, 75.0), (5 * MIN, 50.0)])
    start = next(i for i, r in enumerate(rows) if r[4] == 75.0)
    (tmp_path / "a").mkdir()
    async with Node(tmp_path / "a") as whole:
        await whole.feed(rows, chunk=1)
        (expected,) = whole.fleet("overspeed")
    folder = tmp_path / "b"
    folder.mkdir()
    async with Node(folder) as first:
        await first.feed(rows[: start + 1], chunk=1)  # the episode began, not raised yet
        assert first.fleet("overspeed") == []
        await first.dispatcher.tick(rows[start][1])  # the periodic save, on the clock's tick
        await first.dispatcher.wait_saved()
        # then killed: no save at stop
    async with Node(folder) as second:
        await second.feed(rows[start + 1 :], chunk=1)
        (seen,) = second.fleet("overspeed")
    assert seen.started_ts == expected.started_ts
    assert seen.ended_ts == expected.ended_ts


async def test_the_state_database_decides_which_alarms_are_active(tmp_path):
    v = registry().sensor("tanker.speed").index
    rows = drive(v, T0, [(5 * MIN, 75.0), (5 * MIN, 50.0), (5 * MIN, 75.0)])
    first_clear = next(i for i, r in enumerate(rows) if r[4] == 50.0)
    async with Node(tmp_path) as first:
        await first.feed(rows[:first_clear])
        assert [a.state for a in first.fleet("overspeed")] == ["active"]
        await first.dispatcher.tick(rows[first_clear - 1][1])  # saved while raised
        await first.dispatcher.wait_saved()
        again = next(i for i, r in enumerate(rows) if i > first_clear and r[4] == 75.0)
        await first.feed(rows[first_clear:again])  # cleared after the save, then killed
        assert [a.state for a in first.fleet("overspeed")] == ["cleared"]
    async with Node(tmp_path) as second:
        await second.feed(rows[again:])
        # the saved state said "raised"; the database said cleared: the new episode is an alarm
        assert [a.state for a in second.fleet("overspeed")] == ["cleared", "cleared"]


async def test_a_drift_episode_goes_on_over_a_restart(tmp_path):
    """A terminal jumping back and forth when the hub stops: after the restart its drift alarm
    is not raised again and clears as without the restart; with the saved state its clear
    counts every implausible fix, without one those judged since the restart."""
    v = registry().sensor("tanker.speed").index
    rows = [(v, T0 + i * 10_000, 30.0 + 0.45 * (i % 2), 104.0, 0.0) for i in range(20)]
    rows += [(v, rows[-1][1] + (i + 1) * 10_000, rows[-1][2], 104.0, 0.0) for i in range(60)]
    (tmp_path / "a").mkdir()

    def counted(events) -> int:  # the implausible fixes the clear's comment counts
        (clear,) = [e for e in events if e.rule == "fleet" and e.kind == "cleared"]
        return int(clear.comment.split("漂移定位 ")[1].split(" ")[0])

    async with Node(tmp_path / "a") as whole:
        n_all = counted(await whole.feed(rows, chunk=1))
        (expected,) = whole.fleet("drift")
    assert expected.state == "cleared" and n_all == 19 and expected.value is None
    for saved in (True, False):
        folder = tmp_path / f"b{saved}"
        folder.mkdir()
        async with Node(folder, state=saved) as first:
            await first.feed(rows[:10], chunk=1)
            await first.dispatcher.save_state()
        async with Node(folder, state=saved) as second:
            events = await second.feed(rows[10:], chunk=1)
            (seen,) = second.fleet("drift")
        fleet = [(e.kind, e.side) for e in events if e.rule == "fleet"]
        assert fleet == [("cleared", "drift")], saved
        assert (seen.started_ts, seen.ended_ts) == (expected.started_ts, expected.ended_ts)
        # the first fix after a restart without the state has none before it: not counted
        assert counted(events) == (n_all if saved else n_all - 10), saved


def delayed_registry():
    """The mine with a methane sensor `slow` raised after 10 s above 1.0 (recovers at 0.8)."""
    # the yard site goes under the first tenant's sites
    reg = mine_registry(1502, 1.0)
    text = reg.config.model_dump(mode="json")
    text["tenants"][0]["sites"].append(
        {
            "id": "yard",
            "devices": [
                {
                    "id": "kj-yard",
                    "profile": "coal-substation",
                    "modbus": {"host": "127.0.0.1", "port": 1502, "unit": 2},
                    "sensors": [
                        {
                            "id": "slow",
                            "point": "ch4_t0",
                            "kind": "methane",
                            "levels": [
                                {
                                    "name": "alarm",
                                    "tier": "yellow",
                                    "above": 1.0,
                                    "recover": 0.8,
                                    "on_delay_s": 10,
                                }
                            ],
                        }
                    ],
                }
            ],
        }
    )
    from hazardhub.settings import load_profiles
    from telemetry.config import HubConfig
    from telemetry.registry import build_registry

    from e2e_helpers import ROOT

    profiles, packs = load_profiles(ROOT / "profiles")
    return build_registry(HubConfig.model_validate(text), profiles, packs, "t")


async def test_a_sensor_delay_runs_on_over_a_restart(tmp_path):
    reg = delayed_registry()
    i = reg.sensor("slow").index

    def batch(ts: int, value: float, seq: int) -> ReadingBatch:
        return ReadingBatch(
            np.array([i], np.int32),
            np.array([ts], np.int64),
            np.array([value]),
            np.zeros(1, np.uint8),
            np.zeros(1, np.int64),
            np.array([seq], np.int64),
        )

    async with Node(tmp_path, reg=reg) as first:
        await first.dispatcher.judge(batch(T0, 1.5, 0), [], T0)
        await first.dispatcher.judge(batch(T0 + 5000, 1.6, 1), [], T0 + 5000)
        await first.dispatcher.save_state()
    async with Node(tmp_path, reg=reg) as second:
        events = await second.dispatcher.judge(batch(T0 + 10_000, 1.6, 2), [], T0 + 10_000)
        assert [(e.sensor, e.kind, e.ts) for e in events] == [("slow", "raised", T0 + 10_000)]


@pytest.mark.parametrize("junk", [b"PK\x03\x04 not a zip at all", b""])
async def test_an_unreadable_state_file_is_ignored(tmp_path, caplog, junk):
    (tmp_path / "analytics-state.npz").write_bytes(junk)  # an empty one stopped the hub's start
    async with Node(tmp_path) as node:
        assert node.dispatcher.state.last_ts.shape[0] == len(node.reg.sensors)
        assert "not used" in caplog.text
        rows = coach_rows(node.reg)[:10]
        await node.feed(rows)  # works as from a fresh start
        await node.dispatcher.save_state()
    saved = snapshot.load(tmp_path / "analytics-state.npz")
    assert saved is not None and saved.vehicles == ["acme/tanker", "acme/coach"]


@pytest.mark.parametrize("save_s", [10.0, 0.0])
async def test_the_hub_saves_its_state_when_it_stops(mosquitto, tmp_path, save_s):
    hub = Hub(
        mine_registry(1502, 1.0),
        HubSettings(
            data_dir=tmp_path,
            broker_port=mosquitto.port,
            api_port=free_port(),
            state_save_s=save_s,
        ),
    )
    async with running_hub(hub):
        pass
    saved = snapshot.load(tmp_path / "analytics-state.npz")
    if save_s:
        assert saved is not None
        assert [sid for sid, _ in saved.sensors] == [s.id for s in hub.registry.sensors]
    else:
        assert saved is None


async def test_a_state_saved_by_an_older_hub_keeps_what_it_has(tmp_path):
    """A field the file lacks (a hub of an older version saved it) starts afresh; the others
    are taken up."""
    import zipfile

    rows = coach_rows(registry())
    cut = next(i for i, r in enumerate(rows) if r[1] >= T0 + 3 * HOUR + 50 * MIN)
    async with Node(tmp_path) as first:
        await first.feed(rows[:cut])
        await first.dispatcher.save_state()
    path = tmp_path / "analytics-state.npz"
    old = tmp_path / "old.npz"
    lacks = (
        "fleet.offline_raised",
        "fleet.drift_open",
        "fleet.drift_last",
        "fleet.drift_count",
        "fleet.roll_ms",  # the rolling 24 h's slots: the day's driving at the last fix instead
        "fleet.roll_slot",
        "fleet.crew_roll_ms",
        "fleet.crew_roll_slot",
        "fleet.last_acc",  # the last fix's ACC: not said (a stop is a rest, as before)
        "core.last_arrival",
        "core.frozen_since",
        "core.ck_frozen_since",
        "core.broke",
    )
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            if item.filename.removesuffix(".npy") in lacks:
                continue
            data = src.read(item.filename)
            if item.filename == "core.level.npy":  # seven sides, before 'frozen'
                buf = io.BytesIO()
                np.save(buf, np.load(io.BytesIO(data))[:, :7])
                data = buf.getvalue()
            dst.writestr(item, data)
    old.replace(path)
    saved = snapshot.load(path)
    assert saved is not None
    assert not saved.fleet.offline_raised.any()
    assert not saved.fleet.drift_open.any() and not saved.fleet.drift_count.any()  # none open
    assert saved.core.level.shape[1] == 7
    assert not saved.fleet.roll_ms.any() and (saved.fleet.roll_slot == NO_KEY).all()
    assert (saved.fleet.last_acc == -1).all()
    async with Node(tmp_path) as second:
        await second.feed(rows[cut:])
        (alarm,) = second.fleet("fatigue")  # the driving time was taken up all the same
        assert abs(alarm.started_ts - (T0 + 4 * HOUR)) <= 60_000


async def test_the_rolling_24h_is_saved_and_taken_up(tmp_path):
    """The rolling 24 h's slots of each vehicle are in the saved state: a restart 7 h 50 min
    into a coach's 8 h 10 min (rested every 3 h 40 min) raises fatigue_daily on time."""
    rows = drive(
        registry().sensor("coach.speed").index,
        T0,
        [(3 * HOUR + 40 * MIN, 90.0), (20 * MIN, 0.0)] * 2 + [(HOUR + 10 * MIN, 90.0)],
    )
    cut = next(i for i, r in enumerate(rows) if r[1] >= T0 + 8 * HOUR + 30 * MIN)
    async with Node(tmp_path) as first:
        await first.feed(rows[:cut])
        assert first.fleet("fatigue_daily") == []
        kept = first.dispatcher.fleet.state
        await first.dispatcher.save_state()
    saved = snapshot.load(tmp_path / "analytics-state.npz")
    assert saved is not None
    for name in ("roll_ms", "roll_slot", "crew_roll_ms", "crew_roll_slot"):
        assert np.array_equal(getattr(saved.fleet, name), getattr(kept, name)), name
    assert int(saved.fleet.roll_ms.sum()) == 7 * HOUR + 49 * MIN + 30_000  # to the fix before
    async with Node(tmp_path) as second:
        await second.feed(rows[cut:])
        (alarm,) = second.fleet("fatigue_daily")
        assert alarm.started_ts == T0 + 8 * HOUR + 30 * MIN + 10 * MIN + 30_000


async def test_a_fatigue_alarm_names_its_driver_across_a_restart(tmp_path):
    """The coach's driver says his id once, on the first fix (docs/mqtt.md allows it); the hub
    restarts 3 h 50 min into his driving; the fatigue alarm 10 min after the restart names him
    (the core keeps codes, not names: the fatigue alarm named nobody)."""
    from ingest.positions import driver_code

    rows = coach_rows(registry())
    cut = next(i for i, r in enumerate(rows) if r[1] >= T0 + 3 * HOUR + 50 * MIN)
    code = driver_code("苏A-D17")

    def named(part: list, first: bool):
        batch = positions(part)
        said = np.zeros(len(part), np.int64)
        if first:
            said[0] = code
        return dataclasses.replace(
            batch, driver=said, driver_names={code: "苏A-D17"} if first else None
        )

    async def feed(node: Node, part: list, first: bool) -> list:
        events = []
        for i in range(0, len(part), 40):
            chunk = part[i : i + 40]
            batch = named(chunk, first and i == 0)
            events += await node.dispatcher.judge(None, [batch], chunk[-1][1])
        return events

    async with Node(tmp_path) as node:
        assert await feed(node, rows[:cut], True) == []
        await node.dispatcher.save_state()
    async with Node(tmp_path) as node:
        events = await feed(node, rows[cut:], False)
    (raised,) = [e for e in events if e.kind == "raised" and e.side == "fatigue"]
    assert raised.comment == "驾驶员 driver 苏A-D17", raised
    # the saved file keeps the names of the drivers its state holds, no more
    saved = snapshot.load(tmp_path / "analytics-state.npz")
    assert saved is not None and saved.driver_names == {code: "苏A-D17"}


def test_trend_buffers_saved_with_absolute_times_are_read_as_offsets(tmp_path):
    """A file of a hub that kept the trend buffers' times as absolute int64 (no `hist_base`)
    is read with its kept readings as they were, as int32 offsets from a base."""
    import json

    from alerts.evaluate import CoreState, Readings, evaluate
    from alerts.table import compile_table
    from telemetry.config import LevelSpec, RateSpec
    from telemetry.registry import SensorInfo

    levels = (LevelSpec(name="alarm", tier="yellow", above=1.0, recover=1.0),)
    info = SensorInfo(0, "s0", "t", "site", "dev", "k0", "methane", "", "", "", "r", levels, 60.0)
    table = compile_table([dataclasses.replace(info, rate=RateSpec(per_min=1, window_s=60))])
    ts = T0 + np.arange(40, dtype=np.int64) * 5000
    state, _, _ = evaluate(
        table,
        Readings(np.zeros(40, np.int32), ts, np.linspace(0, 1, 40), np.zeros(40, np.uint8)),
        CoreState.empty(1),
    )
    kept = state.trend_readings(0)
    absolute, values, _ = state.aligned(np.arange(1))  # right-aligned, as an older hub kept them
    meta = {
        "version": snapshot.VERSION,
        "saved_ms": T0,
        "sensors": [["s0", "x"]],
        "vehicles": [],
        "fences": "",
        "terminal_flags": {},
        "terminal_last_ts": {},
    }
    arrays = {
        f"core.{f.name}": getattr(state, f.name)
        for f in dataclasses.fields(CoreState)
        if f.name not in ("hist_base", "hist_head", "hist_ts", "hist_v")
    }
    arrays["core.hist_ts"], arrays["core.hist_v"] = absolute, values
    path = tmp_path / "analytics-state.npz"
    np.savez(
        path,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        trend_of=table.trend_of,
        route=np.zeros(0, np.int32),
        **arrays,
    )
    saved = snapshot.load(path)
    assert saved is not None
    assert saved.core.hist_ts.dtype == np.int32
    assert saved.core.trend_readings(0) == kept


def test_a_state_saved_before_held_actions_judges_a_hold(tmp_path):
    """A file of a hub before `verify: {hold: true}` has no `broke`: it loads, and a cut met
    before the restart is held after it (the face re-energised while the methane stays)."""
    import json

    from alerts.evaluate import CoreState, Readings, evaluate
    from alerts.table import ACTION, compile_table
    from telemetry.config import LevelSpec, VerifySpec
    from telemetry.registry import SensorInfo

    levels = (LevelSpec(name="power_cut", tier="red", above=1.5, recover=1.0),)
    verify = VerifySpec(sensor="s1", expect_below=0.5, within_s=2, hold=True)
    infos = [
        SensorInfo(0, "s0", "t", "site", "dev", "k0", "methane", "%", "", "", "r", levels, None),
        SensorInfo(1, "s1", "t", "site", "dev", "k1", "power_feed", "", "", "", "", (), None),
    ]
    infos[0] = dataclasses.replace(infos[0], verify=verify)
    table = compile_table(infos)

    def batch(sensors: list[int], ts: list[int], values: list[float]) -> Readings:
        n = len(ts)
        return Readings(
            np.array(sensors, np.int32),
            T0 + np.array(ts, np.int64),
            np.array(values),
            np.zeros(n, np.uint8),
        )

    state, _, _ = evaluate(table, batch([0, 1], [1000, 1000], [1.6, 0.0]), CoreState.empty(2))
    assert state.met[0]
    meta = {
        "version": snapshot.VERSION,
        "saved_ms": T0,
        "sensors": [["s0", "x"], ["s1", "y"]],
        "vehicles": [],
        "fences": "",
        "terminal_flags": {},
        "terminal_last_ts": {},
    }
    arrays = {
        f"core.{f.name}": getattr(state, f.name)
        for f in dataclasses.fields(CoreState)
        if f.name != "broke"
    }
    path = tmp_path / "analytics-state.npz"
    np.savez(
        path,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        trend_of=table.trend_of,
        route=np.zeros(0, np.int32),
        **arrays,
    )
    saved = snapshot.load(path)
    assert saved is not None and saved.core.broke.shape == (0,)
    after, tr, _ = evaluate(table, batch([1, 0], [5000, 6000], [1.0, 1.6]), saved.core)
    assert [(r[1] - T0, r[5]) for r in tr.rows() if r[3] == ACTION] == [(5000, 1)]
    assert after.broke.tolist()[0] == T0 + 5000


async def test_a_blind_areas_episode_is_not_raised_again_after_a_restart(tmp_path):
    """A collision judged from a blind area sent after the live fix (`alerts.vehicles.terminal`):
    the hub restarted, the broker delivered the backlog again (at least once): raised a second
    time, as the late positions judged were not saved. They are now, with the state."""
    from ingest.store.base import PositionBatch

    reg = registry()
    v = reg.sensor("tanker.speed").index
    live = drive(v, T0, [(5 * MIN, 50.0)])
    live.append((v, T0 + 10 * MIN, live[-1][2], live[-1][3] + 0.05, 50.0))  # out of a tunnel
    ts = [T0 + 6 * MIN + k * 10_000 for k in range(3)]
    backlog = PositionBatch(
        np.full(3, v, np.int32),
        np.array(ts, np.int64),
        *(np.zeros(3),) * 4,
        np.array([1 << 29, 1 << 29, 0], np.uint32),
    )
    async with Node(tmp_path) as first:
        await first.feed(live)
        events = await first.dispatcher.judge(None, [backlog], live[-1][1] + 1000)
        assert [(e.kind, e.side) for e in events] == [
            ("raised", "terminal_collision"),
            ("cleared", "terminal_collision"),
        ]
        await first.dispatcher.save_state()
    async with Node(tmp_path) as second:
        assert await second.dispatcher.judge(None, [backlog], live[-1][1] + 2000) == []
        # the rest of that tunnel's blind area (a hole of the live track, saved) still raises
        rest = PositionBatch(
            np.full(1, v, np.int32),
            np.array([T0 + 8 * MIN], np.int64),
            *(np.zeros(1),) * 4,
            np.array([1 << 30], np.uint32),  # a rollover
        )
        events = await second.dispatcher.judge(None, [rest], live[-1][1] + 3000)
        assert [(e.kind, e.side) for e in events] == [
            ("raised", "terminal_rollover"),
            ("cleared", "terminal_rollover"),
        ]
