"""The ingest pipeline (pure): telemetry and position messages against the demo registry, with
every rejection counted and explained; the position decoder; the dedupe window."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazardhub.settings import load_registry
from ingest.metrics import Metrics
from ingest.pipeline import DAY_MS, Pipeline, SeenSeqs
from ingest.positions import MAX_RECORDS, PositionError, decode_positions, driver_code
from telemetry.codec import TelemetryBatch, decode, encode
from telemetry.quality import Quality
from telemetry.registry import Registry
from telemetry.topics import TopicLayout

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_717_200_000_000  # arrival time of every message, ms
L = TopicLayout()
CHEM, FARM, TANK1 = "acme-chem", "tank-farm", "tank1-rtu"
TANK1_TOPIC = L.telemetry(CHEM, FARM, TANK1)
TANKER_TOPIC = L.position(CHEM, "tanker-01")

REJECTED = "hazardhub_messages_rejected_total"
READINGS_REJECTED = "hazardhub_readings_rejected_total"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(ROOT / "examples" / "demo.yaml", [ROOT / "profiles"])


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def pipeline(registry: Registry, metrics: Metrics) -> Pipeline:
    return Pipeline(registry, L, metrics)


def payload(
    keys: tuple[str, ...] = ("level", "pressure", "temperature"),
    key: list[int] | None = None,
    ts: list[int] | None = None,
    value: list[float] | None = None,
    quality: list[int] | None = None,
    *,
    device: str = TANK1,
    epoch: int = 1_717_000_000_000,
    seq: int = 42,
) -> bytes:
    key = list(range(len(keys))) if key is None else key
    n = len(key)
    return encode(
        TelemetryBatch(
            "gw1",
            device,
            epoch,
            seq,
            keys,
            np.array(key, dtype=np.uint16),
            np.array([NOW - 1000] * n if ts is None else ts, dtype=np.int64),
            np.array([float(i + 1) for i in range(n)] if value is None else value),
            np.array([0] * n if quality is None else quality, dtype=np.uint8),
        )
    )


def sid(registry: Registry, sensor_id: str) -> int:
    info = registry.sensor(sensor_id)
    assert info is not None
    return info.index


# --- telemetry accepted --------------------------------------------------------------------------


def test_valid_telemetry_becomes_a_reading_batch(
    pipeline: Pipeline, registry: Registry, metrics: Metrics
) -> None:
    data = payload(
        ("temperature", "level"),
        key=[0, 1, 1],
        ts=[NOW - 3000, NOW - 2000, NOW - 1000],
        value=[21.5, 4.0, 4.5],
        quality=[Quality.GOOD, Quality.GOOD, Quality.MANUAL],
        epoch=123,
        seq=9,
    )
    h = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert h.kind == "telemetry"
    assert not h.rejected_whole and not h.duplicate and h.reasons == []
    assert h.mark == ((CHEM, FARM, TANK1), 123, 9)
    r = h.readings
    assert r is not None and len(r) == 3
    temp, level = sid(registry, "t101-temp"), sid(registry, "t101-level")
    assert r.sensor.tolist() == [temp, level, level]
    assert r.sensor.dtype == np.int32
    assert r.ts.tolist() == [NOW - 3000, NOW - 2000, NOW - 1000]
    assert r.value.tolist() == [21.5, 4.0, 4.5]
    assert r.quality.tolist() == [0, 0, int(Quality.MANUAL)]
    assert r.epoch.tolist() == [123] * 3 and r.seq.tolist() == [9] * 3
    assert h.positions is None
    assert metrics.get("hazardhub_messages_total", kind="telemetry") == 1
    assert metrics.total(REJECTED) == 0 and metrics.total(READINGS_REJECTED) == 0


def test_sensor_indices_follow_the_topic_device(pipeline: Pipeline, registry: Registry) -> None:
    """The same key on another device maps to that device's sensor."""
    topic = L.telemetry(CHEM, FARM, "tank2-rtu")
    h = pipeline.handle(topic, payload(device="tank2-rtu"), NOW)
    assert h.readings is not None
    assert h.readings.sensor.tolist() == [
        sid(registry, "t102-level"),
        sid(registry, "t102-pressure"),
        sid(registry, "t102-temp"),
    ]
    mine = L.telemetry("north-coal", "face-1301", "kj-sub-3")
    h = pipeline.handle(mine, payload(("feed", "ch4_t2"), device="kj-sub-3"), NOW)
    assert h.readings is not None
    assert h.readings.sensor.tolist() == [
        sid(registry, "face1301-feed"),
        sid(registry, "face1301-ch4-t2"),
    ]


def test_empty_batch_is_accepted_with_no_readings(pipeline: Pipeline) -> None:
    h = pipeline.handle(TANK1_TOPIC, payload((), key=[]), NOW)
    assert not h.rejected_whole and h.reasons == []
    assert h.readings is not None and len(h.readings) == 0
    assert h.mark == ((CHEM, FARM, TANK1), 1_717_000_000_000, 42)


# --- telemetry rejected whole --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "data", "reason", "kind", "text"),
    [
        (
            L.telemetry(CHEM, FARM, "ghost"),
            payload(device="ghost"),
            "unknown_device",
            "telemetry",
            "no device 'ghost'",
        ),
        (
            L.telemetry("nobody", FARM, TANK1),
            payload(),
            "unknown_device",
            "telemetry",
            "tenant 'nobody'",
        ),
        (
            L.telemetry(CHEM, "face-1301", TANK1),
            payload(),
            "unknown_device",
            "telemetry",
            "in site 'face-1301'",
        ),
        (
            TANK1_TOPIC,
            payload(device="tank2-rtu"),
            "device_mismatch",
            "telemetry",
            "payload names device 'tank2-rtu', topic names 'tank1-rtu'",
        ),
        (
            TANK1_TOPIC,
            b"not a payload at all, but longer than a header",
            "decode_error",
            "telemetry",
            "bad magic",
        ),
        (TANK1_TOPIC, payload()[:-1], "decode_error", "telemetry", "truncated"),
        (TANK1_TOPIC, b"", "decode_error", "telemetry", "truncated in header"),
        ("some/other/topic", payload(), "bad_topic", "other", "not under the root"),
        (
            "hazardhub/v1/acme-chem/tank-farm/tank1-rtu/status",
            payload(),
            "bad_topic",
            "other",
            "matches no topic",
        ),
        (
            "hazardhub/v1/acme-chem/tank+farm/tank1-rtu/telemetry",
            payload(),
            "bad_topic",
            "other",
            "not a valid topic level",
        ),
        (L.vehicle_command(CHEM, "t-01"), b"{}", "unexpected_topic", "other", "does not consume"),
        (L.alarms(CHEM, FARM), b"{}", "unexpected_topic", "other", "does not consume"),
    ],
)
def test_telemetry_rejected_whole(
    pipeline: Pipeline, metrics: Metrics, topic: str, data: bytes, reason: str, kind: str, text: str
) -> None:
    h = pipeline.handle(topic, data, NOW)
    assert h.rejected_whole
    assert h.kind == kind
    assert h.readings is None and h.positions is None and h.mark is None
    assert len(h.reasons) == 1
    assert h.reasons[0].startswith(f"{reason}: ")
    assert text in h.reasons[0]
    assert metrics.get(REJECTED, reason=reason) == 1
    assert metrics.total(REJECTED) == 1


def test_rejections_accumulate_per_reason(pipeline: Pipeline, metrics: Metrics) -> None:
    for _ in range(3):
        pipeline.handle(TANK1_TOPIC, b"junk", NOW)
    pipeline.handle("x/y", b"", NOW)
    assert metrics.get(REJECTED, reason="decode_error") == 3
    assert metrics.get(REJECTED, reason="bad_topic") == 1
    assert metrics.get("hazardhub_messages_total", kind="telemetry") == 3
    assert 'hazardhub_messages_rejected_total{reason="decode_error"} 3' in metrics.render()


# --- duplicates ----------------------------------------------------------------------------------


def test_duplicate_after_seen_add(pipeline: Pipeline, metrics: Metrics) -> None:
    data = payload(epoch=5, seq=1)
    first = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert not first.duplicate and first.mark is not None
    # the pipeline alone holds nothing: the hub's flush holds a mark taken until it is judged
    assert not pipeline.handle(TANK1_TOPIC, data, NOW).duplicate
    pipeline.seen.add(first.mark)
    again = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert again.duplicate and not again.rejected_whole
    assert again.readings is None and again.mark == first.mark
    assert metrics.get("hazardhub_messages_duplicate_total") == 1
    assert metrics.total(REJECTED) == 0
    # another seq, another epoch (gateway restart) or another device is not a duplicate
    assert not pipeline.handle(TANK1_TOPIC, payload(epoch=5, seq=2), NOW).duplicate
    assert not pipeline.handle(TANK1_TOPIC, payload(epoch=6, seq=1), NOW).duplicate
    topic2 = L.telemetry(CHEM, FARM, "tank2-rtu")
    assert not pipeline.handle(topic2, payload(device="tank2-rtu", epoch=5, seq=1), NOW).duplicate


def test_a_mark_held_by_a_flush_in_flight_is_a_duplicate(
    pipeline: Pipeline, metrics: Metrics
) -> None:
    """A copy taken while its first is being judged (held) is a duplicate; released unjudged
    (left to the broker), the next copy is judged."""
    data = payload(epoch=5, seq=1)
    first = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert first.mark is not None
    pipeline.seen.hold(first.mark)
    again = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert again.duplicate and again.readings is None and again.mark == first.mark
    assert metrics.get("hazardhub_messages_duplicate_total") == 1
    pipeline.seen.release(first.mark)
    assert not pipeline.handle(TANK1_TOPIC, data, NOW).duplicate
    pipeline.seen.hold(first.mark)
    pipeline.seen.release_all()
    assert not pipeline.handle(TANK1_TOPIC, data, NOW).duplicate
    pipeline.seen.add(first.mark)  # judged: a duplicate for good
    assert pipeline.handle(TANK1_TOPIC, data, NOW).duplicate


def test_duplicate_check_uses_the_injected_window(registry: Registry) -> None:
    seen = SeenSeqs()
    seen.add(((CHEM, FARM, TANK1), 1, 2))
    p = Pipeline(registry, L, Metrics(), seen=seen)
    assert p.handle(TANK1_TOPIC, payload(epoch=1, seq=2), NOW).duplicate


# --- some readings dropped -----------------------------------------------------------------------


def test_unknown_sensor_keys_are_dropped_rest_kept(
    pipeline: Pipeline, registry: Registry, metrics: Metrics
) -> None:
    # lel1 is a point of another device; bogus is nobody's
    data = payload(("level", "bogus", "lel1"), key=[0, 1, 2, 1, 0], value=[1, 2, 3, 4, 5])
    h = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert not h.rejected_whole
    assert h.readings is not None
    assert h.readings.sensor.tolist() == [sid(registry, "t101-level")] * 2
    assert h.readings.value.tolist() == [1.0, 5.0]
    assert len(h.reasons) == 1
    assert h.reasons[0].startswith("unknown_sensor: 3 reading(s)")
    assert "'bogus'" in h.reasons[0] and "'lel1'" in h.reasons[0]
    assert metrics.get(READINGS_REJECTED, reason="unknown_sensor") == 3
    assert metrics.total(REJECTED) == 0


@pytest.mark.parametrize("quality", [Quality.GOOD, Quality.OUT_OF_RANGE], ids=lambda q: q.name)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_measurements_are_dropped(
    pipeline: Pipeline, metrics: Metrics, bad: float, quality: Quality
) -> None:
    """A measurement (good, or out of range: judged against the levels) must carry a number; a
    NaN out of range was stored as null, judged by nothing, counted nowhere (helper-81)."""
    data = payload(value=[1.0, bad, 3.0], quality=[0, int(quality), 0])
    h = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert h.readings is not None
    assert h.readings.value.tolist() == [1.0, 3.0]
    assert [r.split(":")[0] for r in h.reasons] == ["non_finite"]
    assert "1 reading(s)" in h.reasons[0]
    assert metrics.get(READINGS_REJECTED, reason="non_finite") == 1


@pytest.mark.parametrize(
    "quality",
    [q for q in Quality if q not in (Quality.GOOD, Quality.OUT_OF_RANGE)],
    ids=lambda q: q.name,
)
def test_nan_with_a_quality_that_is_no_measurement_is_kept(
    pipeline: Pipeline, quality: Quality
) -> None:
    data = payload(value=[math.nan, 2.0, 3.0], quality=[int(quality), 0, 0])
    h = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert h.readings is not None and len(h.readings) == 3
    assert math.isnan(h.readings.value[0])
    assert h.readings.quality[0] == quality
    assert h.reasons == []


def test_time_window_bounds(registry: Registry, metrics: Metrics) -> None:
    p = Pipeline(registry, L, metrics, max_future_ms=1000, max_past_ms=5000)
    ts = [NOW + 1000, NOW + 1001, NOW - 5000, NOW - 5001, NOW]
    data = payload(("level",), key=[0] * 5, ts=ts, value=[1, 2, 3, 4, 5])
    h = p.handle(TANK1_TOPIC, data, NOW)
    assert h.readings is not None
    assert h.readings.ts.tolist() == [NOW + 1000, NOW - 5000, NOW]
    assert h.readings.value.tolist() == [1.0, 3.0, 5.0]
    assert sorted(r.split(":")[0] for r in h.reasons) == ["future_time", "past_time"]
    assert metrics.get(READINGS_REJECTED, reason="future_time") == 1
    assert metrics.get(READINGS_REJECTED, reason="past_time") == 1


def test_default_time_window(pipeline: Pipeline, metrics: Metrics) -> None:
    """30 s ahead at most: a reading stamped 120 s ahead (a gateway's clock stepped back by
    NTP) was taken, and the sensor's true readings for 2 min after were late, not judged: a
    methane alarm held, the face blind (helper-133)."""
    assert pipeline.max_future_ms == 30_000 and pipeline.max_past_ms == 400 * DAY_MS
    ts = [NOW + 120_000, NOW + 29_000, NOW - 400 * DAY_MS - 1, NOW - 399 * DAY_MS]
    h = pipeline.handle(TANK1_TOPIC, payload(("level",), key=[0] * 4, ts=ts), NOW)
    assert h.readings is not None
    assert h.readings.ts.tolist() == [NOW + 29_000, NOW - 399 * DAY_MS]
    assert metrics.total(READINGS_REJECTED) == 2
    # both clocks named: the hub's may be the one behind (helper-195)
    assert h.reasons[0].startswith("future_time: 1 reading(s) are up to 120 s ahead of the hub's")
    assert "the sender's or the hub's clock is off" in h.reasons[0]


def test_each_dropped_reading_is_counted_once(pipeline: Pipeline, metrics: Metrics) -> None:
    """A reading with several faults is counted under the first reason only."""
    data = payload(
        ("bogus", "level"),
        key=[0, 1, 1, 1],
        ts=[NOW + 10 * DAY_MS, NOW + 10 * DAY_MS, NOW, NOW],
        value=[math.nan, math.nan, 7.0, 8.0],
    )
    h = pipeline.handle(TANK1_TOPIC, data, NOW)
    assert h.readings is not None and h.readings.value.tolist() == [7.0, 8.0]
    assert metrics.get(READINGS_REJECTED, reason="unknown_sensor") == 1
    assert metrics.get(READINGS_REJECTED, reason="non_finite") == 1
    assert metrics.get(READINGS_REJECTED, reason="future_time") == 0
    assert metrics.total(READINGS_REJECTED) == 2
    assert [r.split(":")[0] for r in h.reasons] == ["unknown_sensor", "non_finite"]


def test_all_readings_dropped_is_still_accepted(pipeline: Pipeline) -> None:
    h = pipeline.handle(TANK1_TOPIC, payload(("bogus",), key=[0, 0]), NOW)
    assert not h.rejected_whole and h.mark is not None
    assert h.readings is not None and len(h.readings) == 0
    assert h.readings.sensor.dtype == np.int32


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 3]),  # level, pressure, temperature, bogus
            st.sampled_from([0.0, 1.5, math.nan, math.inf]),
            st.sampled_from([0, 3, 5]),
            st.sampled_from([NOW, NOW + 400_000, NOW - 401 * DAY_MS]),
        ),
        max_size=20,
    )
)
def test_readings_are_partitioned_into_kept_and_counted(
    registry: Registry, rows: list[tuple[int, float, int, int]]
) -> None:
    metrics = Metrics()
    p = Pipeline(registry, L, metrics)
    keys = ("level", "pressure", "temperature", "bogus")
    data = payload(
        keys,
        key=[r[0] for r in rows],
        value=[r[1] for r in rows],
        quality=[r[2] for r in rows],
        ts=[r[3] for r in rows],
    )
    h = p.handle(TANK1_TOPIC, data, NOW)
    expected = [r for r in rows if r[0] != 3 and (r[2] != 0 or math.isfinite(r[1])) and r[3] == NOW]
    assert h.readings is not None
    assert len(h.readings) == len(expected)
    assert metrics.total(READINGS_REJECTED) == len(rows) - len(expected)
    assert h.readings.sensor.tolist() == [
        sid(registry, ("t101-level", "t101-pressure", "t101-temp")[r[0]]) for r in expected
    ]


# --- positions -----------------------------------------------------------------------------------

GOOD_REC: dict[str, Any] = {
    "ts": NOW - 1000,
    "lat": 32.06,
    "lon": 118.79,
    "speed_kmh": 72.5,
    "heading_deg": 90.0,
}


def jpay(doc: Any) -> bytes:
    return orjson.dumps(doc)


def test_one_position_object(pipeline: Pipeline, registry: Registry, metrics: Metrics) -> None:
    h = pipeline.handle(TANKER_TOPIC, jpay({**GOOD_REC, "seq": 17}), NOW)
    assert h.kind == "position" and not h.rejected_whole and h.reasons == []
    speed = registry.vehicles[(CHEM, "tanker-01")].speed_sensor
    assert speed == sid(registry, "tanker-01.speed")
    pos, r = h.positions, h.readings
    assert pos is not None and r is not None
    assert pos.vehicle.tolist() == [speed]
    assert (pos.lat.tolist(), pos.lon.tolist()) == ([32.06], [118.79])
    assert pos.speed_kmh.tolist() == [72.5] and pos.heading_deg.tolist() == [90.0]
    assert pos.ts.tolist() == [NOW - 1000]
    # the speed reading of the vehicle's speed sensor
    assert r.sensor.tolist() == [speed] and r.sensor.dtype == np.int32
    assert r.value.tolist() == [72.5]
    assert r.quality.tolist() == [Quality.GOOD]
    assert r.seq.tolist() == [17] and r.epoch.tolist() == [0]
    assert metrics.get("hazardhub_messages_total", kind="position") == 1


def test_position_array_backfill(pipeline: Pipeline, registry: Registry) -> None:
    recs = [{**GOOD_REC, "ts": NOW - 3000 + i * 1000, "speed_kmh": 60.0 + i} for i in range(3)]
    topic = L.position("swift-coach", "coach-07")
    h = pipeline.handle(topic, jpay(recs), NOW)
    assert h.readings is not None and len(h.readings) == 3
    assert h.readings.sensor.tolist() == [sid(registry, "coach-07.speed")] * 3
    assert h.readings.value.tolist() == [60.0, 61.0, 62.0]
    assert h.readings.ts.tolist() == [NOW - 3000, NOW - 2000, NOW - 1000]
    assert h.readings.seq.tolist() == [-1, -1, -1]


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-06-01T00:00:00Z", _ms(2024, 6, 1)),
        ("2024-06-01T00:00:00+00:00", _ms(2024, 6, 1)),
        ("2024-06-01T08:00:00+08:00", _ms(2024, 6, 1)),
        ("2024-05-31T19:30:00-04:30", _ms(2024, 6, 1)),
        ("2024-06-01T00:00:00.250Z", _ms(2024, 6, 1) + 250),
        (1_717_200_000_123, 1_717_200_000_123),
        (0, 0),
    ],
)
def test_position_timestamps(ts: Any, expected: int) -> None:
    cols = decode_positions(jpay({**GOOD_REC, "ts": ts}))
    assert cols.rejected == ()
    assert cols.ts.tolist() == [expected]


def test_rfc3339_milliseconds_are_exact() -> None:
    cols = decode_positions(jpay({**GOOD_REC, "ts": "2004-03-15T07:55:47.472+00:00"}))
    assert cols.ts.tolist() == [1_079_337_347_472]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"lat": None}, "missing lat"),
        ({"ts": None, "speed_kmh": None}, "missing ts, speed_kmh"),
        ({"lat": 91}, "lat 91 is outside [-90, 90]"),
        ({"lat": -90.5}, "lat -90.5 is outside"),
        ({"lon": 180.01}, "lon 180.01 is outside [-180, 180]"),
        ({"speed_kmh": -1}, "speed_kmh -1 is outside [0, 300]"),
        ({"speed_kmh": 301}, "speed_kmh 301 is outside"),
        ({"heading_deg": 360.5}, "heading_deg 360.5 is outside [0, 360]"),
        ({"alt_m": 9001}, "alt_m 9001 is outside"),
        ({"colour": "red"}, "unknown field(s) colour"),
        ({"lat": True}, "lat must be a number, got bool"),
        ({"speed_kmh": False}, "speed_kmh must be a number, got bool"),
        ({"lat": "32.06"}, "lat must be a number, got str"),
        ({"lon": [118]}, "lon must be a number, got list"),
        ({"heading_deg": {}}, "heading_deg must be a number, got dict"),
        ({"ts": True}, "ts must be epoch ms or an RFC 3339 string"),
        ({"ts": 1.7e12 + 0.5}, "ts must be epoch ms or an RFC 3339 string"),  # a fraction of a ms
        ({"ts": -1}, "ts -1 is not a plausible epoch in ms"),
        ({"ts": "2024-06-01T08:00:00"}, "has no time zone offset"),
        ({"ts": "yesterday"}, "is not RFC 3339"),
        ({"ts": "2024-06-01T08:00:00+08:00" + " " * 20}, "ts must be epoch ms or an RFC 3339"),
        ({"seq": -2}, "seq must be a non-negative integer"),
        ({"seq": True}, "seq must be a non-negative integer"),
        ({"seq": 1.0}, "seq must be a non-negative integer"),
        ({"alarm_flags": 2**32}, "alarm_flags must be a 32-bit unsigned integer"),
        ({"alarm_flags": -1}, "alarm_flags must be a 32-bit"),
        ({"acc_on": 1}, "acc_on must be true or false"),
        ({"driver_id": "d" * 65}, "driver_id must be a string of at most 64"),
        ({"driver_id": 7}, "driver_id must be a string"),
    ],
)
def test_bad_record_is_rejected_with_reason_good_ones_kept(
    pipeline: Pipeline, metrics: Metrics, change: dict[str, Any], why: str
) -> None:
    bad = {k: v for k, v in {**GOOD_REC, **change}.items() if v is not None}
    recs = [GOOD_REC, bad, {**GOOD_REC, "ts": NOW - 500}]
    cols = decode_positions(jpay(recs))
    assert len(cols) == 2
    assert [i for i, _ in cols.rejected] == [1]
    assert why in cols.rejected[0][1]
    h = pipeline.handle(TANKER_TOPIC, jpay(recs), NOW)
    assert not h.rejected_whole
    assert h.readings is not None and h.readings.ts.tolist() == [NOW - 1000, NOW - 500]
    assert len(h.reasons) == 1 and h.reasons[0].startswith("bad_record: record 1: ")
    assert why in h.reasons[0]
    assert metrics.get(READINGS_REJECTED, reason="bad_record") == 1


def test_optional_fields_are_accepted() -> None:
    rec = {
        **GOOD_REC,
        "alt_m": -20.5,
        "acc_on": True,
        "driver_id": "D-17",
        "alarm_flags": 2**32 - 1,
        "seq": 0,
    }
    cols = decode_positions(jpay(rec))
    assert cols.rejected == () and cols.seq.tolist() == [0]


def test_the_driver_of_a_position_goes_to_the_fleet_rules(pipeline: Pipeline) -> None:
    """driver_id was checked, then dropped: fatigue was the vehicle's (helper-74). It goes on as
    a code, the same for the same id in any process; a record without one says no driver."""
    recs = [
        {**GOOD_REC, "ts": NOW - 3000, "driver_id": "苏A-D17"},
        {**GOOD_REC, "ts": NOW - 2000},
        {**GOOD_REC, "ts": NOW - 1000, "driver_id": " 苏A-D18 "},
    ]
    h = pipeline.handle(TANKER_TOPIC, jpay(recs), NOW)
    assert h.positions is not None and h.positions.driver is not None
    assert h.positions.driver.tolist() == [driver_code("苏A-D17"), 0, driver_code("苏A-D18")]
    assert driver_code("苏A-D17") != driver_code("苏A-D18") and driver_code("x") > 0
    # with the ids said, by code: the fleet's alarms name their driver
    assert h.positions.driver_names == {
        driver_code("苏A-D17"): "苏A-D17",
        driver_code("苏A-D18"): "苏A-D18",
    }
    # a payload that says no driver carries no column at all (the fleet's fast path)
    h = pipeline.handle(TANKER_TOPIC, jpay(GOOD_REC), NOW)
    assert h.positions is not None and h.positions.driver is None


def test_a_ts_written_as_a_whole_float_is_taken() -> None:
    """1795918080000.0 (JSON numbers of many producers) was refused as not epoch ms
    (helper-89); a fraction of a millisecond still is."""
    cols = decode_positions(jpay([{**GOOD_REC, "ts": float(NOW - 1000)}, {**GOOD_REC, "ts": 1.5}]))
    assert cols.ts.tolist() == [NOW - 1000]
    assert [why for _, why in cols.rejected] == ["ts must be epoch ms or an RFC 3339 string"]


def test_edges_of_the_ranges_are_accepted() -> None:
    recs = [
        {**GOOD_REC, "lat": -90, "lon": -180, "speed_kmh": 0, "heading_deg": 0},
        {**GOOD_REC, "lat": 90, "lon": 180, "speed_kmh": 300, "heading_deg": 360},
    ]
    cols = decode_positions(jpay(recs))
    assert cols.rejected == () and cols.lat.tolist() == [-90.0, 90.0]


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"ts": "\xff"}', "not valid JSON (or not UTF-8)"),
        (b"\xfe\xff", "not valid JSON"),
        (b"5", "expected an object or an array of objects, got int"),
        (b'"hello"', "got str"),
        (b"null", "got NoneType"),
        (b"true", "got bool"),
    ],
)
def test_unreadable_position_payloads_are_rejected_whole(
    pipeline: Pipeline, metrics: Metrics, data: bytes, text: str
) -> None:
    with pytest.raises(PositionError, match=text.replace("(", r"\(").replace(")", r"\)")):
        decode_positions(data)
    h = pipeline.handle(TANKER_TOPIC, data, NOW)
    assert h.rejected_whole and h.kind == "position"
    assert h.reasons[0].startswith("decode_error: ") and text in h.reasons[0]
    assert metrics.get(REJECTED, reason="decode_error") == 1
    assert h.readings is None and h.positions is None


def test_too_many_records_are_rejected_whole() -> None:
    with pytest.raises(PositionError, match=f"{MAX_RECORDS + 1} records exceed the limit"):
        decode_positions(b"[" + b",".join([b"{}"] * (MAX_RECORDS + 1)) + b"]")


@pytest.mark.parametrize(
    "topic",
    [
        L.position(CHEM, "ghost-99"),
        L.position("swift-coach", "tanker-01"),
        L.position("nobody", "coach-07"),
    ],
)
def test_unknown_vehicle_is_rejected(pipeline: Pipeline, metrics: Metrics, topic: str) -> None:
    h = pipeline.handle(topic, jpay(GOOD_REC), NOW)
    assert h.rejected_whole and h.reasons[0].startswith("unknown_vehicle: ")
    assert metrics.get(REJECTED, reason="unknown_vehicle") == 1


def test_only_bad_records_rejects_the_message(pipeline: Pipeline, metrics: Metrics) -> None:
    h = pipeline.handle(TANKER_TOPIC, jpay([{**GOOD_REC, "lat": 91}, 5]), NOW)
    assert h.rejected_whole
    assert [r.split(":")[0] for r in h.reasons] == ["bad_record", "bad_record"]
    assert "record 1: a record must be an object, got int" in h.reasons[1]
    assert metrics.get(REJECTED, reason="no_valid_record") == 1
    assert metrics.get(READINGS_REJECTED, reason="bad_record") == 2


def test_a_fix_at_lat_0_lon_0_is_no_position(pipeline: Pipeline, metrics: Metrics) -> None:
    """A terminal without a GNSS fix sends zeros: taken as a place, it raised two drift alarms
    of 14,041,045 km/h and an offline_moved (helper-74)."""
    recs = [
        {**GOOD_REC, "lat": 0, "lon": 0.0},
        {**GOOD_REC, "lat": 0.0, "lon": 120.5},
        # an emergency and an antenna cut without a fix: its alarm bits are not dropped with it
        {**GOOD_REC, "lat": 0, "lon": 0, "alarm_flags": 1 | 32},
        # and the report that clears them, still without a fix (they stayed active, helper-85)
        {**GOOD_REC, "ts": NOW - 500, "lat": 0, "lon": 0, "alarm_flags": 0},
    ]
    h = pipeline.handle(TANKER_TOPIC, jpay(recs), NOW)
    assert h.positions is not None and h.positions.lon.tolist() == [120.5, 0.0, 0.0]
    assert h.positions.flags().tolist() == [0, 33, 0]
    # no speed reading of it either: a 0 km/h would clear a real overspeed (helper-80)
    assert h.readings is not None and len(h.readings) == 1
    assert h.reasons == [
        "bad_record: record 0: lat 0, lon 0 is no position fix (send nothing without one, or "
        "alarm_flags alone)"
    ]
    assert metrics.get(READINGS_REJECTED, reason="bad_record") == 1


def test_positions_out_of_the_time_window_are_dropped(pipeline: Pipeline, metrics: Metrics) -> None:
    recs = [
        {**GOOD_REC, "ts": NOW + 300_001},
        {**GOOD_REC, "ts": NOW - 400 * DAY_MS - 1},
        {**GOOD_REC, "ts": NOW, "speed_kmh": 50},
    ]
    h = pipeline.handle(TANKER_TOPIC, jpay(recs), NOW)
    assert not h.rejected_whole
    assert h.readings is not None and h.readings.value.tolist() == [50.0]
    assert h.positions is not None and h.positions.ts.tolist() == [NOW]
    (said,) = [r for r in h.reasons if r.startswith("bad_time: 2 record(s)")]
    # which times, and the window they missed
    assert f"ts {NOW + 300_001}, ts {NOW - 400 * DAY_MS - 1}" in said
    assert (
        "at most 30 s ahead of the hub's clock: a time ahead means the sender's or the hub's "
        "clock is off, set both by NTP; 400 days behind" in said
    )
    assert metrics.get(READINGS_REJECTED, reason="bad_time") == 2
    h = pipeline.handle(TANKER_TOPIC, jpay(recs[:1]), NOW)
    assert h.rejected_whole
    assert metrics.get(REJECTED, reason="no_valid_record") == 1
    # epoch seconds, the usual mistake, is named
    h = pipeline.handle(TANKER_TOPIC, jpay([{**GOOD_REC, "ts": NOW // 1000}]), NOW)
    assert f"ts {NOW // 1000} (epoch seconds? ts is in milliseconds)" in h.reasons[0]


# --- the dedupe window ---------------------------------------------------------------------------

DEV_A = ("t", "s", "a")
DEV_B = ("t", "s", "b")


def test_seen_window_forgets_what_falls_below_it() -> None:
    seen = SeenSeqs(per_device=3)
    for seq in range(4):
        seen.add((DEV_A, 1, seq))
    assert (DEV_A, 1, 0) not in seen
    assert all((DEV_A, 1, s) in seen for s in (1, 2, 3))
    assert (DEV_A, 1, 4) not in seen


def test_seen_window_is_per_device_and_epoch_and_takes_gaps_and_late_ones() -> None:
    seen = SeenSeqs(per_device=8, epochs=2)
    for seq in (0, 1, 5):  # 2, 3, 4 missing (a gateway's spool still has them)
        seen.add((DEV_A, 1, seq))
    assert [s for s in range(7) if (DEV_A, 1, s) in seen] == [0, 1, 5]
    seen.add((DEV_A, 1, 3))  # a late one within the window
    assert [s for s in range(7) if (DEV_A, 1, s) in seen] == [0, 1, 3, 5]
    seen.add((DEV_A, 1, 100))  # a jump past the window forgets the rest
    assert [s for s in range(101) if (DEV_A, 1, s) in seen] == [100]
    for seq in range(10):
        seen.add((DEV_B, 1, seq))
    assert (DEV_A, 1, 100) in seen and (DEV_B, 1, 9) in seen
    assert (DEV_B, 1, 1) not in seen and (DEV_B, 1, 2) in seen
    assert (("t", "s", "c"), 1, 0) not in seen
    assert (DEV_A, 2, 100) not in seen  # the epoch is part of the identity
    seen.add((DEV_A, 2, 0))
    seen.add((DEV_A, 3, 0))  # a third epoch: the oldest (1) is forgotten
    assert (DEV_A, 1, 100) not in seen
    assert (DEV_A, 2, 0) in seen and (DEV_A, 3, 0) in seen


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.integers(0, 60)), min_size=1, max_size=200),
    st.integers(1, 16),
)
def test_seen_window_against_a_plain_set(adds, window) -> None:
    """Within the window below each epoch's highest seq, the bitmask answers like a set."""
    seen = SeenSeqs(per_device=window, epochs=2)
    model: dict[int, set[int]] = {}
    for epoch, seq in adds:
        seen.add((DEV_A, epoch, seq))
        model.setdefault(epoch, set()).add(seq)
    for epoch, seqs in model.items():
        high = max(seqs)
        for seq in range(max(0, high - window + 1), high + 2):
            assert ((DEV_A, epoch, seq) in seen) == (seq in seqs), (epoch, seq)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.sampled_from([1.5, -0.0, math.nan, math.inf, -math.inf, 1e308]),
            st.sampled_from([0, 0, 1, 3]),
            st.sampled_from([NOW, NOW - 1000, NOW + 300_000, NOW + 300_001, NOW - 400 * DAY_MS]),
        ),
        max_size=12,
    )
)
def test_the_quick_path_agrees_with_the_reading_by_reading_checks(
    registry: Registry, rows: list[tuple[int, float, int, int]]
) -> None:
    """Every key known: `handle` takes the quick path when nothing is to be dropped; either way
    its batch, reasons and counts are those of the checks made reading by reading."""
    data = payload(
        key=[r[0] for r in rows],
        value=[r[1] for r in rows],
        quality=[r[2] for r in rows],
        ts=[r[3] for r in rows],
    )
    quick, plain = Pipeline(registry, L, Metrics()), Pipeline(registry, L, Metrics())
    h = quick.handle(TANK1_TOPIC, data, NOW)
    batch = decode(data)
    lookup, _ = plain._lookup((CHEM, FARM, TANK1), batch.keys)
    ref = plain._telemetry_checked(batch, lookup[batch.key], (("x", "y", "z"), 0, 0), NOW)
    assert h.readings is not None and ref.readings is not None
    for name in ("sensor", "ts", "value", "quality", "epoch", "seq"):
        got, want = getattr(h.readings, name), getattr(ref.readings, name)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert h.reasons == ref.reasons
    for reason in ("non_finite", "future_time", "past_time"):
        assert quick.metrics.get(READINGS_REJECTED, reason=reason) == plain.metrics.get(
            READINGS_REJECTED, reason=reason
        )


def test_topics_are_parsed_once_and_bad_ones_rejected_every_time(
    pipeline: Pipeline, metrics: Metrics
) -> None:
    for _ in range(2):
        assert pipeline.handle(TANK1_TOPIC, payload(), NOW).readings is not None
        h = pipeline.handle("elsewhere/x", b"", NOW)
        assert h.rejected_whole
    assert list(pipeline._topics) == [TANK1_TOPIC]
    assert metrics.get(REJECTED, reason="bad_topic") == 2
