"""The `TimeSeriesStore` contract, run against every store.

`sqlite` runs everywhere; `influx` needs `ingest.store.influx.InfluxStore` and the `influxdb`
fixture (a running server, `.url`) and is skipped when either is missing. `buffered-*` run the
same suite through `ingest.store.buffered.BufferedStore` around each store. Every test builds a
registry with a fresh tenant and fresh sensor ids, so tests sharing one InfluxDB database never see
each other's series.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.store.base import Aggregate, PositionBatch, ReadingBatch, TimeSeriesStore
from telemetry.config import HubConfig
from telemetry.quality import Quality
from telemetry.registry import Registry, build_registry

T0 = 1_700_000_000_000  # ms, a multiple of every window size used below


@dataclass(frozen=True)
class World:
    registry: Registry
    tenant: str
    ch4: int  # d1
    co: int  # d1
    d2_ch4: int  # d2
    vehicle: int  # v1's speed sensor


def make_world() -> World:
    u = uuid.uuid4().hex[:10]
    tenant = f"t{u}"
    level = {"name": "high", "tier": "red", "above": 1.0, "recover": 0.8}
    config = HubConfig.model_validate(
        {
            "device_profiles": [
                {
                    "name": "gasdet",
                    "points": [
                        {"name": "ch4", "address": 0, "unit": "%LEL"},
                        {"name": "co", "address": 1, "unit": "ppm"},
                    ],
                }
            ],
            "rule_packs": [
                {
                    "name": "test",
                    "rules": {
                        "ch4": {"levels": [level]},
                        "speed": {
                            "levels": [
                                {"name": "over", "tier": "orange", "above": 80, "recover": 75}
                            ]
                        },
                    },
                }
            ],
            "tenants": [
                {
                    "id": tenant,
                    "sites": [
                        {
                            "id": "s1",
                            "devices": [
                                {
                                    "id": "d1",
                                    "profile": "gasdet",
                                    "sensors": [
                                        {
                                            "id": f"{u}.d1.ch4",
                                            "point": "ch4",
                                            "kind": "methane",
                                            "rule": "test.ch4",
                                        },
                                        {"id": f"{u}.d1.co", "point": "co", "kind": "co"},
                                    ],
                                },
                                {
                                    "id": "d2",
                                    "profile": "gasdet",
                                    "sensors": [
                                        {"id": f"{u}.d2.ch4", "point": "ch4", "kind": "methane"}
                                    ],
                                },
                            ],
                        }
                    ],
                    "vehicles": [
                        {"id": f"v{u}", "plate": "A12345", "class": "hazmat", "rule": "test.speed"}
                    ],
                }
            ],
        }
    )
    reg = build_registry(config)
    return World(
        registry=reg,
        tenant=tenant,
        ch4=_index(reg, f"{u}.d1.ch4"),
        co=_index(reg, f"{u}.d1.co"),
        d2_ch4=_index(reg, f"{u}.d2.ch4"),
        vehicle=reg.vehicles[(tenant, f"v{u}")].speed_sensor,
    )


def _index(reg: Registry, sensor_id: str) -> int:
    info = reg.sensor(sensor_id)
    assert info is not None
    return info.index


def readings(
    sensor: Sequence[int] | int,
    ts: Sequence[int],
    value: Sequence[float],
    quality: Sequence[int] | int = 0,
    epoch: Sequence[int] | int = 1,
    seq: Sequence[int] | int = 1,
) -> ReadingBatch:
    n = len(ts)

    def col(x: Sequence[Any] | int, dtype: type[np.generic]) -> np.ndarray[Any, Any]:
        return np.full(n, x, dtype=dtype) if isinstance(x, int) else np.asarray(x, dtype=dtype)

    return ReadingBatch(
        sensor=col(sensor, np.int32),
        ts=np.asarray(ts, dtype=np.int64),
        value=np.asarray(value, dtype=np.float64),
        quality=col(quality, np.uint8),
        epoch=col(epoch, np.int64),
        seq=col(seq, np.int64),
    )


def positions(vehicle: int, ts: Sequence[int], lat: Sequence[float]) -> PositionBatch:
    n = len(ts)
    lat_a = np.asarray(lat, dtype=np.float64)
    return PositionBatch(
        vehicle=np.full(n, vehicle, dtype=np.int32),
        ts=np.asarray(ts, dtype=np.int64),
        lat=lat_a,
        lon=lat_a + 100.0,
        speed_kmh=np.linspace(10.0, 90.0, n) if n else np.zeros(0),
        heading_deg=np.full(n, 90.0),
    )


def make_store(kind: str, registry: Registry, request: pytest.FixtureRequest) -> TimeSeriesStore:
    if kind.startswith("buffered-"):
        from ingest.store.buffered import BufferedStore

        tmp_path: Path = request.getfixturevalue("tmp_path")
        inner = make_store(kind.removeprefix("buffered-"), registry, request)
        return BufferedStore(inner, registry, tmp_path / "spool")
    if kind == "sqlite":
        from ingest.store.sqlite import SqliteStore

        tmp_path: Path = request.getfixturevalue("tmp_path")
        return SqliteStore(registry, tmp_path / "ts.sqlite")
    try:
        from ingest.store.influx import InfluxStore
    except ModuleNotFoundError as exc:
        if exc.name != "ingest.store.influx":
            raise  # the module is there but broken: fail, do not hide it
        pytest.skip("ingest.store.influx is not written yet")
    try:
        server = request.getfixturevalue("influxdb")
    except pytest.FixtureLookupError:
        pytest.skip("no 'influxdb' fixture")
    store: TimeSeriesStore = InfluxStore(registry, server.url)
    return store


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture(params=["sqlite", "influx", "buffered-sqlite", "buffered-influx"])
async def store(request: pytest.FixtureRequest, world: World) -> AsyncIterator[TimeSeriesStore]:
    s = make_store(request.param, world.registry, request)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_write_then_latest_and_history(store: TimeSeriesStore, world: World) -> None:
    ts = [T0 + i * 1000 for i in range(10)]
    await store.write_readings(readings(world.ch4, ts, [float(i) for i in range(10)]))
    await store.write_readings(readings(world.co, ts[:3], [10.0, 20.0, 30.0], quality=5))

    latest = await store.latest([world.ch4, world.co, world.d2_ch4])
    assert set(latest) == {world.ch4, world.co}
    assert (latest[world.ch4].ts, latest[world.ch4].value, latest[world.ch4].quality) == (
        T0 + 9000,
        9.0,
        0,
    )
    assert (latest[world.co].ts, latest[world.co].value, latest[world.co].quality) == (
        T0 + 2000,
        30.0,
        5,
    )

    assert await store.history(world.ch4, T0, T0 + 10_000) == [
        (t, float(i)) for i, t in enumerate(ts)
    ]
    # start inclusive, end exclusive
    assert await store.history(world.ch4, T0 + 2000, T0 + 5000) == [
        (T0 + 2000, 2.0),
        (T0 + 3000, 3.0),
        (T0 + 4000, 4.0),
    ]


@pytest.mark.parametrize(
    ("aggregate", "expected"),
    [
        ("mean", [2.0, 7.0, 20.0]),
        ("min", [0.0, 5.0, 20.0]),
        ("max", [4.0, 9.0, 20.0]),
        ("last", [4.0, 9.0, 20.0]),
        ("count", [5.0, 5.0, 1.0]),
    ],
)
async def test_downsample(
    store: TimeSeriesStore, world: World, aggregate: Aggregate, expected: list[float]
) -> None:
    # Written newest first within the batch: `last` goes by event time, not row order.
    ts = [T0 + i * 1000 for i in reversed(range(10))] + [T0 + 20_000]
    values = [float(i) for i in reversed(range(10))] + [20.0]
    await store.write_readings(readings(world.ch4, ts, values))
    rows = await store.history(world.ch4, T0, T0 + 30_000, every_ms=5000, aggregate=aggregate)
    # only windows that have data: none for T0+10s and T0+15s
    assert rows == list(zip([T0, T0 + 5000, T0 + 20_000], expected, strict=True))


async def test_aggregates_are_of_measurements_and_raw_rows_say_their_quality(
    store: TimeSeriesStore, world: World
) -> None:
    """A detector under calibration with 60 %LEL of test gas, and one whose loop broke (a
    sensor fault's -12.5): the trend's max showed 60 for a window with no gas, its min -12.5
    (helper-81). Aggregates are of measurements (good, out of range) only; the raw rows carry
    their quality, so a client can show the calibration as what it was."""
    calibration, fault = int(Quality.CALIBRATION), int(Quality.SENSOR_FAULT)
    out_of_range = int(Quality.OUT_OF_RANGE)
    ts = [T0 + i * 1000 for i in range(8)]
    values = [2.0, 60.1, 60.3, 3.0, -12.5, 2.5, 104.0, math.nan]
    qualities = [0, calibration, calibration, 0, fault, 0, out_of_range, int(Quality.COMM_LOSS)]
    await store.write_readings(readings(world.ch4, ts, values, quality=qualities))
    await store.write_readings(
        readings(world.co, [T0 + 20_000, T0 + 21_000], [55.0, 56.0], quality=calibration)
    )
    for every, aggregate, want in (
        (10_000, "max", [(T0, 104.0)]),  # the out-of-range measurement counts, the gas not
        (10_000, "min", [(T0, 2.0)]),
        (10_000, "count", [(T0, 4.0)]),
        (10_000, "mean", [(T0, (2.0 + 3.0 + 2.5 + 104.0) / 4)]),
        (10_000, "last", [(T0, 104.0)]),
        (60_000, "max", [(T0 - T0 % 60_000, 104.0)]),  # whole minutes: from the rollups
    ):
        got = await store.history(world.ch4, T0, T0 + 10_000, every, aggregate)
        assert got == want, (every, aggregate)
    # a window of calibration readings alone has no aggregate at all
    assert await store.history(world.co, T0, T0 + 60_000, 10_000, "max") == []
    rows = await store.readings(world.ch4, T0, T0 + 10_000)
    assert [(t, q) for t, _, q in rows] == list(zip(ts, qualities, strict=True))
    assert [v for _, v, _ in rows][:7] == values[:7] and math.isnan(rows[7][1])
    assert await store.readings(world.d2_ch4, T0, T0 + 10_000) == []
    # the first ones only, with a limit (a history answer is bounded)
    assert [t for t, _, _ in await store.readings(world.ch4, T0, T0 + 10_000, 3)] == ts[:3]


async def test_track(store: TimeSeriesStore, world: World) -> None:
    ts = [T0 + 3000, T0 + 1000, T0 + 2000, T0 + 9000]
    await store.write_positions(positions(world.vehicle, ts, [31.3, 31.1, 31.2, 31.9]))
    track = await store.track(world.vehicle, T0, T0 + 5000)
    assert track.ts.tolist() == [T0 + 1000, T0 + 2000, T0 + 3000]
    assert track.lat.tolist() == pytest.approx([31.1, 31.2, 31.3])
    assert track.lon.tolist() == pytest.approx([131.1, 131.2, 131.3])
    assert track.vehicle.tolist() == [world.vehicle] * 3
    assert track.heading_deg.tolist() == pytest.approx([90.0] * 3)
    assert track.speed_kmh.dtype == np.float64
    assert track.ts.dtype == np.int64


async def test_last_positions_are_the_newest_by_event_time(
    store: TimeSeriesStore, world: World
) -> None:
    """A map of the fleet asks every vehicle's last position at once; the newest by event time,
    not the last to arrive (a terminal's blind-area backlog arrives after its live fixes)."""
    assert len(await store.last_positions([world.vehicle, world.ch4])) == 0
    await store.write_positions(positions(world.vehicle, [T0 + 5000, T0 + 6000], [31.5, 31.6]))
    await store.write_positions(positions(world.vehicle, [T0 + 1000, T0 + 2000], [31.1, 31.2]))
    last = await store.last_positions([world.vehicle, world.ch4, world.vehicle])
    assert last.vehicle.tolist() == [world.vehicle]
    assert last.ts.tolist() == [T0 + 6000]
    assert last.lat.tolist() == pytest.approx([31.6])
    assert last.lon.tolist() == pytest.approx([131.6])
    assert last.speed_kmh.tolist() == pytest.approx([90.0])
    assert last.heading_deg.tolist() == pytest.approx([90.0])
    assert last.ts.dtype == np.int64 and last.vehicle.dtype == np.int32
    assert len(await store.last_positions([])) == 0


async def test_count_by_seq(store: TimeSeriesStore, world: World) -> None:
    await store.write_readings(
        readings(
            [world.ch4, world.co, world.ch4, world.co, world.d2_ch4],
            [T0, T0, T0 + 1000, T0 + 1000, T0],
            [1.0, 2.0, 3.0, 4.0, 5.0],
            epoch=7,
            seq=[1, 1, 2, 2, 1],
        )
    )
    assert await store.count_by_seq(world.tenant, "d1") == {(7, 1): 2, (7, 2): 2}
    assert await store.count_by_seq(world.tenant, "d2") == {(7, 1): 1}
    assert await store.count_by_seq(world.tenant, "nope") == {}
    assert await store.count_by_seq("no-such-tenant", "d1") == {}


async def test_rewrite_is_idempotent(store: TimeSeriesStore, world: World) -> None:
    batch = readings(
        [world.ch4, world.ch4, world.co], [T0, T0 + 1000, T0], [1.0, 2.0, 3.0], seq=[4, 5, 4]
    )
    await store.write_readings(batch)
    await store.write_readings(batch)  # an at-least-once replay
    assert await store.history(world.ch4, T0, T0 + 2000) == [(T0, 1.0), (T0 + 1000, 2.0)]
    assert await store.count_by_seq(world.tenant, "d1") == {(1, 4): 2, (1, 5): 1}

    # the same (sensor, ts) again overwrites
    await store.write_readings(readings(world.ch4, [T0 + 1000], [2.5], seq=5))
    assert await store.history(world.ch4, T0, T0 + 2000) == [(T0, 1.0), (T0 + 1000, 2.5)]
    assert (await store.latest([world.ch4]))[world.ch4].value == 2.5

    pos = positions(world.vehicle, [T0, T0 + 1000], [30.0, 30.5])
    await store.write_positions(pos)
    await store.write_positions(pos)
    assert (await store.track(world.vehicle, T0, T0 + 2000)).ts.tolist() == [T0, T0 + 1000]


async def test_comm_loss_is_the_latest_value(store: TimeSeriesStore, world: World) -> None:
    await store.write_readings(
        readings(world.ch4, [T0, T0 + 1000], [0.4, math.nan], quality=[0, int(Quality.COMM_LOSS)])
    )
    latest = (await store.latest([world.ch4]))[world.ch4]
    assert latest.ts == T0 + 1000
    assert math.isnan(latest.value)
    assert latest.quality == Quality.COMM_LOSS


async def test_comm_loss_row_in_history(store: TimeSeriesStore, world: World) -> None:
    await store.write_readings(
        readings(world.ch4, [T0, T0 + 1000], [0.4, math.nan], quality=[0, int(Quality.COMM_LOSS)])
    )
    rows = await store.history(world.ch4, T0, T0 + 2000)
    assert [t for t, _ in rows] == [T0, T0 + 1000]
    assert rows[0][1] == 0.4
    assert math.isnan(rows[1][1])


async def test_latest_is_by_event_time(store: TimeSeriesStore, world: World) -> None:
    await store.write_readings(readings(world.ch4, [T0 + 5000, T0 + 3000], [5.0, 3.0]))
    # a late batch (spooled by a gateway) arrives after newer readings
    await store.write_readings(readings(world.ch4, [T0 + 1000, T0 + 2000], [1.0, 2.0]))
    latest = (await store.latest([world.ch4]))[world.ch4]
    assert (latest.ts, latest.value) == (T0 + 5000, 5.0)
    assert [t for t, _ in await store.history(world.ch4, T0, T0 + 10_000)] == [
        T0 + 1000,
        T0 + 2000,
        T0 + 3000,
        T0 + 5000,
    ]


async def test_empty_results(store: TimeSeriesStore, world: World) -> None:
    assert await store.latest([]) == {}
    assert await store.latest([world.ch4, world.co]) == {}
    assert await store.history(world.ch4, T0, T0 + 10_000) == []
    assert await store.history(world.ch4, T0, T0 + 10_000, every_ms=1000) == []
    assert await store.count_by_seq(world.tenant, "d1") == {}
    track = await store.track(world.vehicle, T0, T0 + 10_000)
    assert len(track) == 0
    assert track.ts.dtype == np.int64
    assert track.lat.dtype == np.float64

    await store.write_readings(readings(world.ch4, [T0], [1.0]))
    await store.write_positions(positions(world.vehicle, [T0], [30.0]))
    assert await store.history(world.ch4, T0 + 1, T0 + 10_000) == []
    assert await store.history(world.ch4, T0 - 10_000, T0) == []
    assert (
        await store.history(world.ch4, T0 + 1000, T0 + 9000, every_ms=1000, aggregate="max") == []
    )
    assert await store.history(world.co, T0 - 10_000, T0 + 10_000) == []
    assert len(await store.track(world.vehicle, T0 + 1, T0 + 10_000)) == 0
    assert await store.latest([world.co, world.d2_ch4]) == {}


async def test_empty_batches_are_no_ops(store: TimeSeriesStore, world: World) -> None:
    await store.write_readings(readings([], [], []))
    await store.write_positions(positions(world.vehicle, [], []))
    assert await store.latest([world.ch4]) == {}


def alarm(world: World, kind: str, ts: int, level: int, value: float, alarm_id: int = 1) -> Any:
    from alerts.alarms import AlarmEvent

    info = world.registry.sensors[world.ch4]
    return AlarmEvent(
        alarm_id=alarm_id,
        kind=kind,
        tenant=info.tenant,
        site=info.site,
        device=info.device,
        sensor=info.id,
        rule=info.rule,
        side="above",
        level=level,
        level_name="high" if level else "normal",
        tier="red" if level else "none",
        action='evacuate, "now"' if level else "",
        value=value,
        ts=ts,
        arrival=ts + 150,
    )


async def test_alarm_events(store: TimeSeriesStore, world: World) -> None:
    raised = alarm(world, "raised", T0 + 1000, 1, 1.25)
    cleared = alarm(world, "cleared", T0 + 5000, 0, math.nan)
    await store.write_alarm_events([cleared, raised])
    await store.write_alarm_events([raised])  # a replay overwrites, never duplicates
    await store.write_alarm_events([])
    # None is every tenant: other tests' events may share an InfluxDB database
    got = [e for e in await store.alarm_events(None, T0, T0 + 10_000) if e.tenant == world.tenant]
    assert [e.kind for e in got] == ["raised", "cleared"]  # by event time
    assert got[0] == raised
    assert math.isnan(got[1].value)
    assert got[1].to_json() == cleared.to_json()
    assert await store.alarm_events([world.tenant], T0, T0 + 5000) == [raised]  # end exclusive
    assert await store.alarm_events([world.tenant], T0 + 1001, T0 + 10_000) == got[1:]
    assert await store.alarm_events(["someone-else"], T0, T0 + 10_000) == []
    assert await store.alarm_events([], T0, T0 + 10_000) == []


async def test_last_calibrations(store: TimeSeriesStore, world: World) -> None:
    """Each sensor's newest calibration reading (quality 6) with start <= ts < end, of the
    sensors that have one: what a hub starting without a sensor's last calibration takes up."""
    cal = int(Quality.CALIBRATION)
    ch4 = [T0 + 1000, T0 + 5000, T0 + 9000, T0 + 12_000]
    await store.write_readings(readings(world.ch4, ch4, [0.3, 2.0, 0.3, 0.4], [0, cal, cal, 0]))
    await store.write_readings(readings(world.co, [T0 - 10_000, T0], [50.0, 1.0], [cal, 0]))
    # a calibration reading without a value is one all the same
    await store.write_readings(readings(world.d2_ch4, [T0], [math.nan], cal))
    wanted = [world.ch4, world.co, world.d2_ch4]
    end = T0 + 60_000
    assert await store.last_calibrations(wanted, T0, end) == {
        world.ch4: T0 + 9000,
        world.d2_ch4: T0,
    }
    assert await store.last_calibrations(wanted, T0 - 10_000, end) == {
        world.ch4: T0 + 9000,
        world.co: T0 - 10_000,
        world.d2_ch4: T0,
    }
    assert await store.last_calibrations(wanted, T0 - 10_000, T0 + 9000) == {
        world.ch4: T0 + 5000,
        world.co: T0 - 10_000,
        world.d2_ch4: T0,
    }
    assert await store.last_calibrations([world.ch4], T0 + 9001, end) == {}
    assert await store.last_calibrations([], T0, end) == {}
