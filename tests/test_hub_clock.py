"""The hub's clock runs the core even when nothing arrives: a sensor that goes silent raises its
no-data alarm, and alarm events reach the time-series store too; a backlog drained after an
outage is not silence."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from alerts.alarms import AlarmBook, AlarmEvent
from alerts.evaluate import CoreState, evaluate
from alerts.state import Readings, Transitions
from alerts.statedb import StateDB
from alerts.table import NO_DATA, compile_table
from hazardhub.hub import Hub, HubSettings
from ingest.dispatch import Dispatcher
from ingest.metrics import Metrics
from ingest.store.base import ReadingBatch
from ingest.store.sqlite import SqliteStore
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import HubConfig
from telemetry.quality import Quality
from telemetry.registry import Registry, build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, running_hub
from services import free_port

CONFIG = """
version: 1
device_profiles:
  - name: one
    points: [{name: gas, address: 0, dtype: uint16}]
tenants:
  - id: t
    sites:
      - id: s
        devices:
          - id: d
            profile: one
            sensors:
              - id: gas-1
                point: gas
                kind: flammable_gas
                no_data_s: 1
                levels: [{name: level1, tier: yellow, above: 25, recover: 23}]
"""


async def test_silence_raises_no_data_without_any_message(mosquitto, tmp_path):
    registry = build_registry(parse_document(CONFIG, HubConfig, "clock.yaml"))
    hub = Hub(
        registry, HubSettings(data_dir=tmp_path, broker_port=mosquitto.port, api_port=free_port())
    )
    async with running_hub(hub):
        now = time.time_ns() // 1_000_000
        batch = TelemetryBatch(
            "gw",
            "d",
            1,
            0,
            ("gas",),
            np.zeros(1, np.uint16),
            np.array([now], np.int64),
            np.array([30.0]),
            np.zeros(1, np.uint8),
        )
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(TopicLayout().telemetry("t", "s", "d"), encode(batch), qos=1)

        async def kinds():
            rows = await asyncio.to_thread(hub.statedb.list_alarms, None)
            return {r.side for r in rows} >= {0, 3} and rows

        rows = await eventually(kinds, 10, "a level alarm and then a no-data alarm")
        no_data = next(r for r in rows if r.side == 3 and r.sensor == "gas-1")
        assert no_data.state == "active"
        # the device's only sensor is silent: the device itself is in comm loss
        device = next(r for r in rows if r.sensor == "device:t/s/d")
        assert device.state == "active" and device.rule == "comm_loss"
        # raised by the clock about 1 s after the last reading, with nothing arriving
        assert no_data.raised_at - now >= 1000

        async def stored():
            events = await hub.store.alarm_events(["t"], now - 1, now + 60_000)
            return events if {e.side for e in events} >= {"above", "no_data"} else None

        await eventually(stored, 5, "the alarm events in the time-series store")


def _reading(index: int, ts: int, seq: int) -> ReadingBatch:
    return ReadingBatch(
        np.array([index], np.int32),
        np.array([ts], np.int64),
        np.array([5.0]),
        np.zeros(1, np.uint8),
        np.array([1], np.int64),
        np.array([seq], np.int64),
    )


async def test_a_backlog_drained_after_an_outage_raises_no_false_no_data(tmp_path):
    """The broker was down for 140 s (the hub away, the gateway spooling): at the reconnection
    the time away is excused, and the spool's readings, arriving over a minute in order and
    120-150 s old, keep the sensor heard: no no-data alarm. A gateway that then stays silent
    raises it, stamped in event time (real SQLite state, the dispatcher's own clock steps)."""
    config = CONFIG.replace("no_data_s: 1", "no_data_s: 30")
    registry = build_registry(parse_document(config, HubConfig, "clock.yaml"))
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(registry, tmp_path / "ts.db")
    await store.open()
    d = Dispatcher(registry, store, db, Metrics())
    gas = registry.sensor("gas-1").index
    t0 = 1_800_000_000_000
    try:
        await d.link_back(t0)
        await d.judge(_reading(gas, t0, 0), [], t0)
        assert await d.tick(t0 + 10_000) == []
        back = t0 + 150_000  # the link is back after 140 s away
        d.link_lost(t0 + 10_000)
        await d.link_back(back)
        for k in range(1, 121):  # the spool drains: a reading of each second, two a second
            at = back + k * 500
            events = await d.judge(_reading(gas, t0 + k * 1000, k), [], at)
            events += await d.tick(at + 250)
            assert [e for e in events if e.side == "no_data"] == [], k
        # then the gateway dies: silent on the hub's clock 30 s after the last arrival
        last = back + 120 * 500
        assert [e for e in await d.tick(last + 29_000) if e.side == "no_data"] == []
        raised = [e for e in await d.tick(last + 31_000) if e.side == "no_data"]
        assert [(e.kind, e.sensor, e.ts) for e in raised] == [
            ("raised", "gas-1", t0 + 120_000 + 30_000),
            ("raised", "device:t/s/d", t0 + 120_000 + 30_000),  # its only sensor: the device
        ]
    finally:
        await store.close()
        db.close()


def test_an_alarm_never_ends_before_it_started(tmp_path):
    """A no-data alarm raised on the hub's clock while a gateway's link was down, cleared by
    the first reading its spool brings (measured before the raise's stamp), ends when it
    started: a moment, not a negative duration."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "clock.yaml"))
    db = StateDB(tmp_path / "state.db")
    try:
        book = AlarmBook(db, registry, compile_table(registry.sensors))
        gas = registry.sensor("gas-1").index

        def tr(ts: int, after: int) -> Transitions:
            return Transitions(
                np.array([gas], np.int32),
                np.array([ts], np.int64),
                np.array([np.nan]),
                np.array([NO_DATA], np.uint8),
                np.array([1 - after], np.int8),
                np.array([after], np.int8),
            )

        book.apply(tr(50_000, 1), 60_000)
        [cleared] = book.apply(tr(42_000, 0), 70_000)
        assert (cleared.kind, cleared.ts) == ("cleared", 50_000)
        [row] = db.list_alarms(None, sensor="gas-1")
        assert (row.started_ts, row.ended_ts) == (50_000, 50_000)
    finally:
        db.close()


def test_a_devices_comm_loss_clears_with_level_name_normal(tmp_path):
    """Like every clear: the device's comm-loss alarm ends at level_name normal, tier none."""
    registry = build_registry(parse_document(CONFIG, HubConfig, "clock.yaml"))
    db = StateDB(tmp_path / "state.db")
    try:
        table = compile_table(registry.sensors)
        book = AlarmBook(db, registry, table)
        gas = registry.sensor("gas-1").index
        state = CoreState.empty(len(registry.sensors))

        def step(quality: int, ts: int) -> list[AlarmEvent]:
            nonlocal state
            state, tr, _ = evaluate(
                table,
                Readings(
                    np.array([gas], np.int32),
                    np.array([ts], np.int64),
                    np.array([5.0]),
                    np.array([quality], np.uint8),
                ),
                state,
                ts,
            )
            return [e for e in book.apply(tr, ts, state) if e.sensor == "device:t/s/d"]

        [raised] = step(int(Quality.COMM_LOSS), 1_000)
        assert (raised.kind, raised.level_name, raised.tier) == (
            "raised",
            "device_comm_loss",
            "orange",
        )
        [cleared] = step(int(Quality.GOOD), 2_000)
        assert (cleared.kind, cleared.level_name, cleared.tier) == ("cleared", "normal", "none")
    finally:
        db.close()


@dataclass
class _SavedHub:
    """A dispatcher's surroundings with a saved state file and the saving's clock in hand: the
    gas sensor with a 30 s timeout, real SQLite state and time series."""

    registry: Registry
    clock: list[int]
    db: StateDB
    store: SqliteStore
    file: Path

    @staticmethod
    async def open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _SavedHub:
        config = CONFIG.replace("no_data_s: 1", "no_data_s: 30")
        registry = build_registry(parse_document(config, HubConfig, "clock.yaml"))
        clock = [1_800_000_000_000]
        monkeypatch.setattr("ingest.state_saving._now_ms", lambda: clock[0])
        store = SqliteStore(registry, tmp_path / "ts.db")
        await store.open()
        db = StateDB(tmp_path / "state.db")
        return _SavedHub(registry, clock, db, store, tmp_path / "analytics-state.npz")

    async def close(self) -> None:
        await self.store.close()
        self.db.close()


async def test_a_hub_restarted_again_and_again_still_raises_a_silence_that_lasts(
    tmp_path, monkeypatch
):
    """The hub restarts every 20 s (a crash loop) with its saved state, the sensor's gateway
    dead: each start excuses only the time it was stopped, the timeout (30 s) resumes where it
    stood, and no-data is raised in the second run instead of never."""
    rig = await _SavedHub.open(tmp_path, monkeypatch)
    registry, clock, db, store, state_file = rig.registry, rig.clock, rig.db, rig.store, rig.file
    gas, t0 = registry.sensor("gas-1").index, clock[0]
    raised: list[int] = []
    try:
        for run in range(3):
            d = Dispatcher(registry, store, db, Metrics(), state_file=state_file)
            await d.link_back(clock[0])
            if run == 0:
                await d.judge(_reading(gas, t0, 0), [], t0)  # its last reading
            for _ in range(4):  # 20 s up, ticking every 5 s
                clock[0] += 5000
                if [e for e in await d.tick(clock[0]) if e.side == "no_data"]:
                    raised.append(clock[0] - t0)
            await d.save_state()  # the hub stops
            clock[0] += 2000  # and is down 2 s
        assert raised and raised[0] <= 45_000, raised
    finally:
        await rig.close()


async def test_a_hub_stopped_during_an_outage_excuses_the_outage_at_its_next_start(
    tmp_path, monkeypatch
):
    """The link is lost at +5 s, the hub stops at +300 s still away, and starts again at
    +310 s: the state saved carries the time the link was lost, so the whole outage and the
    stop are excused; nothing is raised before the backlog is judged (helper-63)."""
    rig = await _SavedHub.open(tmp_path, monkeypatch)
    registry, clock, db, store, state_file = rig.registry, rig.clock, rig.db, rig.store, rig.file
    gas, t0 = registry.sensor("gas-1").index, clock[0]
    try:
        d = Dispatcher(registry, store, db, Metrics(), state_file=state_file)
        await d.link_back(t0)
        await d.judge(_reading(gas, t0, 0), [], t0)
        d.link_lost(t0 + 5_000)
        clock[0] = t0 + 300_000
        await d.save_state()  # stopped while away
        clock[0] = t0 + 310_000
        again = Dispatcher(registry, store, db, Metrics(), state_file=state_file)
        await again.link_back(clock[0])
        assert [e for e in await again.tick(clock[0] + 1000) if e.side == "no_data"] == []
        # the backlog: readings of the outage, then the gateway keeps sending
        for k in range(1, 40):
            at = clock[0] + 1000 + k * 500
            events = await again.judge(_reading(gas, t0 + k * 1000, k), [], at)
            events += await again.tick(at + 250)
            assert [e for e in events if e.side == "no_data"] == [], k
    finally:
        await rig.close()


_TRUCK = """
version: 1
tenants:
  - id: t
    vehicles:
      - {id: truck, plate: 苏A·D1234, class: hazmat, rule: none}
"""


async def _truck_hub(tmp_path: Path) -> tuple[Dispatcher, SqliteStore, StateDB, int]:
    """A dispatcher over real SQLite state of one hazmat truck, and its speed sensor."""
    registry = build_registry(parse_document(_TRUCK, HubConfig, "fleet.yaml"))
    db = StateDB(tmp_path / "state.db")
    store = SqliteStore(registry, tmp_path / "ts.db")
    await store.open()
    return (
        Dispatcher(registry, store, db, Metrics()),
        store,
        db,
        (registry.vehicles[("t", "truck")].speed_sensor),
    )


async def test_a_vehicle_is_not_offline_for_the_hubs_time_away(tmp_path):
    """A moving vehicle's offline (20 min silent) counts only time the hub was connected: an
    outage of the broker longer than that raised `offline` for every moving vehicle at the
    reconnection, before the backlog of their positions was read. Once the hub is back and
    nothing comes for 20 min, it is raised, stamped in event time."""
    from ingest.store.base import PositionBatch

    d, store, db, speed = await _truck_hub(tmp_path)
    t0 = 1_800_000_000_000
    minute = 60_000

    def fix(ts: int) -> PositionBatch:
        return PositionBatch(
            np.array([speed], np.int32),
            np.array([ts], np.int64),
            np.array([31.2]),
            np.array([121.4 + (ts - t0) / 1e9]),
            np.array([60.0]),
            np.array([90.0]),
        )

    def offline(events: list[AlarmEvent]) -> list[tuple[str, int]]:
        return [(e.kind, e.ts) for e in events if e.rule == "fleet" and e.side == "offline"]

    try:
        await d.link_back(t0)
        assert offline(await d.judge(None, [fix(t0)], t0)) == []
        d.link_lost(t0 + minute)  # the broker goes away for 30 min
        back = t0 + 31 * minute
        await d.link_back(back)
        assert offline(await d.tick(back + 1000)) == []  # 31 min of event time, 1 of hub time
        assert offline(await d.tick(back + 18 * minute)) == []
        raised = offline(await d.tick(back + 20 * minute))
        assert raised == [("raised", t0 + 20 * minute)]
    finally:
        await store.close()
        db.close()


async def test_a_reconnection_waits_for_a_fleet_step_left_running_by_a_cancelled_flush(
    tmp_path, monkeypatch
):
    """The session's end cancels a tick whose fleet step still runs in its thread (a busy
    database); the step then puts back the state it copied. `link_back` waits for it first, or
    the time away it excused was lost and every moving vehicle went offline at the reconnection
    (helper-68)."""
    import threading

    import alerts.vehicles.alarms as fleet_alarms
    from ingest.store.base import PositionBatch

    d, store, db, speed = await _truck_hub(tmp_path)
    t0, minute = 1_800_000_000_000, 60_000
    fix = PositionBatch(
        np.array([speed], np.int32),
        np.array([t0], np.int64),
        np.array([31.2]),
        np.array([121.4]),
        np.array([60.0]),
        np.array([90.0]),
    )
    gate = threading.Event()
    real = fleet_alarms.evaluate_fleet

    def slow(*args):  # the new state is made from a copy, then handed back late
        out = real(*args)
        gate.wait(5)
        return out

    try:
        await d.link_back(t0)
        await d.judge(None, [fix], t0)
        monkeypatch.setattr(fleet_alarms, "evaluate_fleet", slow)
        task = asyncio.create_task(d.tick(t0 + minute))
        await asyncio.sleep(0.2)
        task.cancel()
        d.link_lost(t0 + minute)  # the broker away for 30 min
        back = t0 + 31 * minute
        threading.Timer(0.3, gate.set).start()
        await d.link_back(back)
        monkeypatch.setattr(fleet_alarms, "evaluate_fleet", real)
        events = await d.tick(back + 1000)
        assert [e for e in events if e.rule == "fleet" and e.side == "offline"] == []
    finally:
        gate.set()
        await store.close()
        db.close()


async def test_a_session_the_broker_ends_at_once_asks_for_the_client_id(
    mosquitto, tmp_path, caplog
):
    """Two hubs with one client id took turns on the broker every 0.2 s, each logging "broker
    unreachable (Disconnected during message iteration)": the broker was fine (helper-139).
    A session ended within 2 s of its start asks whether another client has the hub's id."""
    import logging

    caplog.set_level(logging.WARNING)
    registry = build_registry(parse_document(CONFIG, HubConfig, "clock.yaml"))
    settings = HubSettings(
        data_dir=tmp_path, broker_port=mosquitto.port, api_port=free_port(), client_id="hub-x"
    )
    async with running_hub(Hub(registry, settings)):
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hub-x"):
            pass  # the broker ends the hub's session: its id is taken

        def said() -> bool:
            return any("client id 'hub-x'" in r.getMessage() for r in caplog.records)

        await eventually(lambda: asyncio.sleep(0, said()), 5, "the hint")
