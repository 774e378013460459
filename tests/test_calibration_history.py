"""Calibration due (标校超期) for a hub that does not know a sensor's last calibration: no saved
state (an upgrade from a hub without the check, a state file lost), a sensor added by a
configuration change. It takes the last calibration reading from the time-series store before it
judges anything (`ingest.calibrations`): a methane sensor calibrated 14 days before is raised one
day later, not 15. Real hubs, a real mosquitto, the embedded SQLite store and a real influxd."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from alerts.kinds import CALIBRATION_DUE
from hazardhub.hub import Hub, HubSettings
from ingest.store.base import ReadingBatch, TimeSeriesStore
from ingest.store.influx import InfluxStore
from ingest.store.sqlite import SqliteStore
from telemetry.codec import TelemetryBatch, encode
from telemetry.config import HubConfig
from telemetry.quality import Quality
from telemetry.registry import Registry, build_registry, parse_document
from telemetry.topics import TopicLayout

from e2e_helpers import eventually, running_hub
from services import free_port

DAY = 86_400_000
CAL = int(Quality.CALIBRATION)

CONFIG = """
version: 1
device_profiles:
  - name: two
    points: [{name: pa, address: 0, dtype: uint16}, {name: pb, address: 1, dtype: uint16}]
tenants:
  - id: t
    sites:
      - id: s
        devices:
          - id: d
            profile: two
            sensors:
"""
SENSOR = """\
              - id: {id}
                point: {point}
                kind: methane
                calibration_due: {{every_days: 15}}
                levels: [{{name: alarm, tier: yellow, above: 1.0, recover: 1.0}}]
"""


def registry(*sensors: str) -> Registry:
    """Methane sensors `a` (point pa) and `b` (point pb), calibrated every 15 days."""
    text = CONFIG + "".join(SENSOR.format(id=s, point=f"p{s}") for s in sensors)
    return build_registry(parse_document(text, HubConfig, "calibration.yaml"))


def index(reg: Registry, sensor: str) -> int:
    info = reg.sensor(sensor)
    assert info is not None
    return info.index


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Place:
    """Where a hub keeps its time series: the embedded store in its data folder, or a fresh
    InfluxDB database of the shared server."""

    def __init__(self, data: Path, url: str | None = None) -> None:
        self.data, self.url = data, url
        self.database = f"cal{uuid.uuid4().hex[:12]}"

    def settings(self, broker_port: int) -> HubSettings:
        return HubSettings(
            data_dir=self.data,
            broker_port=broker_port,
            api_port=free_port(),
            influx_url=self.url,
            influx_database=self.database,
            influx_retention=None,
        )

    def store(self, reg: Registry) -> TimeSeriesStore:
        if self.url is None:
            return SqliteStore(reg, self.data / "timeseries.db")
        return InfluxStore(reg, self.url, self.database)

    async def fill(self, reg: Registry, rows: Sequence[tuple[str, int, int]]) -> None:
        """Store readings (sensor id, event time, quality) as an earlier hub did."""
        store = self.store(reg)
        await store.open()
        try:
            idx = [index(reg, s) for s, _, _ in rows]
            await store.write_readings(
                ReadingBatch(
                    np.array(idx, np.int32),
                    np.array([t for _, t, _ in rows], np.int64),
                    np.full(len(rows), 0.3),
                    np.array([q for _, _, q in rows], np.uint8),
                    np.zeros(len(rows), np.int64),
                    np.arange(len(rows), dtype=np.int64),
                )
            )
        finally:
            await store.close()


@pytest.fixture(params=["sqlite", "influx"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    influx = request.getfixturevalue("influxdb").url if request.param == "influx" else None
    return Place(tmp_path / "data", influx)


async def send(hub: Hub, port: int, seq: int, rows: Sequence[tuple[str, int, int]]) -> None:
    """Publish readings (point, event time, quality) of device d; return once judged (their
    alarms are recorded a moment later: `calibration_alarms`)."""
    batch = TelemetryBatch(
        "gw",
        "d",
        1,
        seq,
        ("pa", "pb"),
        np.array([("pa", "pb").index(p) for p, _, _ in rows], np.uint16),
        np.array([t for _, t, _ in rows], np.int64),
        np.full(len(rows), 0.3),
        np.array([q for _, _, q in rows], np.uint8),
    )
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(TopicLayout().telemetry("t", "s", "d"), encode(batch), qos=1)
    reg = hub.registry
    newest = {index(reg, p[1:]): t for p, t, _ in rows}

    async def judged() -> bool:
        last = hub.dispatcher.state.last_ts
        return all(int(last[i]) >= t for i, t in newest.items())

    await eventually(judged, 10, "the readings judged")


async def calibration_alarms(hub: Hub, expected: list[tuple[str, int, float]]) -> None:
    """The calibration-due alarms (sensor, start, value) come to be `expected` (those of a
    batch are recorded together, after those of the batches before)."""
    got: list[tuple[str, int, float | None]] = []
    for _ in range(50):
        rows = await asyncio.to_thread(hub.statedb.list_alarms, None)
        got = [(r.sensor, r.started_ts, r.value) for r in rows if r.side == CALIBRATION_DUE]
        if got == expected:
            return
        await asyncio.sleep(0.1)
    assert got == expected


async def test_a_calibration_stored_14_days_before_is_due_one_day_later(
    place: Place, mosquitto
) -> None:
    """No saved state (a hub upgraded from one without the check): sensor a's last
    calibration, 14 days before its first reading, is in the store; b has none there. a is
    raised at the reading a day later, 15 days after the calibration; b counts from its first
    reading and raises nothing."""
    reg = registry("a", "b")
    c = now_ms() - 16 * DAY
    await place.fill(reg, [("a", c - DAY, 0), ("a", c, CAL), ("a", c + 3_600_000, 0)])
    hub = Hub(reg, place.settings(mosquitto.port))
    async with running_hub(hub):
        await send(hub, mosquitto.port, 0, [("pa", c + 14 * DAY, 0), ("pb", c + 14 * DAY, 0)])
        await send(hub, mosquitto.port, 1, [("pa", c + 15 * DAY, 0), ("pb", c + 15 * DAY, 0)])
        await calibration_alarms(hub, [("a", c + 15 * DAY, 15.0)])


async def test_a_saved_calibration_is_kept_over_an_older_stored_one(
    place: Place, mosquitto, tmp_path: Path
) -> None:
    """The saved state knows a's calibration of 10 days ago; the store (restored from an older
    copy) has only one of 20 days ago: the saved one holds, a reading today raises nothing.
    b, unknown to the saved state, takes its stored calibration of 16 days ago: raised."""
    reg = registry("a", "b")
    now = now_ms()
    hub = Hub(reg, place.settings(mosquitto.port))
    async with running_hub(hub):
        await send(hub, mosquitto.port, 0, [("pa", now - 10 * DAY, CAL)])
    assert (place.data / "analytics-state.npz").exists()
    # the time series as an older copy had them
    if place.url is None:
        for f in place.data.glob("timeseries.db*"):
            f.unlink()
    else:
        place.database = f"cal{uuid.uuid4().hex[:12]}"
    await place.fill(reg, [("a", now - 20 * DAY, CAL), ("b", now - 16 * DAY, CAL)])
    hub = Hub(reg, place.settings(mosquitto.port))
    async with running_hub(hub):
        await send(hub, mosquitto.port, 1, [("pa", now - DAY, 0), ("pb", now - DAY, 0)])
        await calibration_alarms(hub, [("b", now - DAY, 15.0)])


async def test_a_sensor_added_by_a_configuration_change_takes_its_stored_calibration(
    mosquitto, tmp_path: Path
) -> None:
    """b, in the store from an earlier configuration (calibrated 14 days before its next
    reading), comes back by a configuration change while the hub runs: its interval counts
    from that calibration, not from its next reading."""
    place = Place(tmp_path / "data")
    both = registry("a", "b")
    c = now_ms() - 16 * DAY
    await place.fill(both, [("b", c, CAL)])
    hub = Hub(registry("a"), place.settings(mosquitto.port))
    async with running_hub(hub):
        await send(hub, mosquitto.port, 0, [("pa", c, 0)])
        await hub.switch(registry("a", "b"), 2)
        await send(hub, mosquitto.port, 1, [("pb", c + 14 * DAY, 0)])
        await send(hub, mosquitto.port, 2, [("pb", c + 15 * DAY, 0)])
        await calibration_alarms(hub, [("b", c + 15 * DAY, 15.0)])


async def test_a_store_down_at_start_stops_nothing(
    mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """InfluxDB not answering at start: said once, the hub runs, readings are judged (spooled
    for the store) and the intervals count from the first readings, as without a store."""
    settings = HubSettings(
        data_dir=tmp_path / "data",
        broker_port=mosquitto.port,
        api_port=free_port(),
        influx_url=f"http://127.0.0.1:{free_port()}",
    )
    hub = Hub(registry("a", "b"), settings)
    c = now_ms() - 16 * DAY
    with caplog.at_level(logging.INFO, logger="ingest.calibrations"):
        async with running_hub(hub):
            await send(hub, mosquitto.port, 0, [("pa", c, 0)])
            await send(hub, mosquitto.port, 1, [("pa", c + 15 * DAY, 0)])
            await calibration_alarms(hub, [("a", c + 15 * DAY, 15.0)])
    said = [r for r in caplog.records if r.name == "ingest.calibrations"]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "2 sensors were looked for in the store 0 of 30 days back" in said[0].getMessage()


async def test_a_core_failure_takes_the_stored_calibrations_again(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core fails on a batch (a bug): its state is rebuilt from the active alarms, which
    know no calibration of a. The calibration taken from the store at start (14 days before
    a's reading) is taken again before the next batch is judged: a is raised 15 days after it,
    not 15 days after its next reading (helper-170: the rebuild lost the seeds)."""
    import ingest.dispatch
    from alerts.statedb import StateDB
    from ingest.calibrations import take_stored_calibrations
    from ingest.dispatch import Dispatcher
    from ingest.metrics import Metrics

    reg = registry("a")
    i = index(reg, "a")
    c = now_ms() - 16 * DAY
    await place.fill(reg, [("a", c, CAL)])
    store = place.store(reg)
    await store.open()
    place.data.mkdir(parents=True, exist_ok=True)
    db = StateDB(place.data / "state.db")
    d = Dispatcher(reg, store, db, Metrics())

    def reading(ts: int, seq: int) -> ReadingBatch:
        one = np.ones(1, np.int64)
        return ReadingBatch(
            np.array([i], np.int32),
            ts * one,
            np.full(1, 0.3),
            np.zeros(1, np.uint8),
            one,
            seq * one,
        )

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the core")

    try:
        assert await take_stored_calibrations(store, d.table, d.state, now_ms()) == 1  # start
        assert await d.judge(reading(c + 14 * DAY, 0), [], now_ms()) == []
        monkeypatch.setattr(ingest.dispatch, "evaluate", broken)
        with pytest.raises(RuntimeError, match="a bug"):
            await d.judge(reading(c + 15 * DAY, 1), [], now_ms())
        monkeypatch.undo()
        assert d.metrics.total("hazardhub_core_failures_total") == 1
        events = await d.judge(reading(c + 15 * DAY, 1), [], now_ms())  # delivered again
        assert [(e.kind, e.side, e.ts) for e in events] == [
            ("raised", "calibration_due", c + 15 * DAY)
        ]
    finally:
        await store.close()
        db.close()


def test_a_calibration_taken_at_a_reload_holds_for_a_rewind_of_the_lateness_window() -> None:
    """A state already judging with a lateness window (a configuration change adds b): the
    calibration taken goes into the window's checkpoint too, so a late reading of b, judged
    again from the checkpoint, still counts from it (not from its own time: cleared)."""
    from alerts.calibration import seed_calibrations, unknown_calibrations
    from alerts.evaluate import CoreState, Readings, evaluate
    from alerts.table import compile_table

    reg = registry("a", "b")
    table = compile_table(reg.sensors, lateness_ms=DAY)
    a, b = index(reg, "a"), index(reg, "b")
    c = 1_800_000_000_000

    def judge(state: CoreState, sensor: int, ts: int) -> tuple[CoreState, list[int]]:
        batch = Readings(
            np.array([sensor], np.int32),
            np.array([ts], np.int64),
            np.array([0.3]),
            np.zeros(1, np.uint8),
        )
        state, tr, _ = evaluate(table, batch, state, ts)
        due = tr.side == CALIBRATION_DUE
        return state, tr.after[due].tolist()

    state, _ = judge(CoreState.empty(len(reg.sensors)), a, c)  # the window set up
    assert unknown_calibrations(table, state).tolist() == [b]
    assert seed_calibrations(state, {b: c, a: c - DAY}) == 1  # a's own is kept
    assert int(state.calib_at[a]) == c
    state, levels = judge(state, b, c + 15 * DAY)
    assert levels == [1]
    state, levels = judge(state, b, c + 15 * DAY - 60_000)  # late: b judged again
    assert levels == []
    assert int(state.level[b, CALIBRATION_DUE]) == 1


def test_the_store_is_asked_newest_first_in_spans_that_double() -> None:
    """A sensor calibrated on schedule is found in the first spans (InfluxDB reads every
    reading of a span): 1 day (and a day ahead), then 1, 2, 4, 8 days further, to the end."""
    from ingest.calibrations import spans

    now = 1_800_000_000_000
    days = [((now - a) / DAY, (now - b) / DAY) for a, b in spans(now, 30 * DAY)]
    assert days == [(1, -1), (2, 1), (4, 2), (8, 4), (16, 8), (30, 16)]
    assert spans(now, DAY // 2) == [(now - DAY // 2, now + DAY)]
